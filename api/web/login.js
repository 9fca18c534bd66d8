// Login form: posts JSON to /api/auth/login, then goes where the user was headed (same-site paths only).
(function () {
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const body = JSON.stringify({
      username: document.getElementById("username").value,
      password: document.getElementById("password").value,
    });
    try {
      const response = await fetch("/api/auth/login", {
        method: "POST", headers: { "Content-Type": "application/json" }, body, credentials: "same-origin",
      });
      if (!response.ok) {
        error.textContent = response.status === 401 ? "用户名或密码错误，或账号已被锁定" : "登录失败（" + response.status + "）";
        error.hidden = false;
        return;
      }
      const next = new URLSearchParams(location.search).get("next") || "/";
      location.assign(next.startsWith("/") && !next.startsWith("//") ? next : "/");
    } catch (e) {
      error.textContent = "无法连接服务";
      error.hidden = false;
    }
  });
})();
