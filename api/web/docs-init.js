// Starts Swagger UI (/docs) or ReDoc (/redoc) from the locally served bundles: a file, since the CSP allows no inline script.
"use strict";
if (document.getElementById("swagger-ui") && window.SwaggerUIBundle) {
  window.SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis], layout: "BaseLayout"});
} else if (document.getElementById("redoc") && window.Redoc) {
  window.Redoc.init("/openapi.json", {}, document.getElementById("redoc"));
}
