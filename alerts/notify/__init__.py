"""One module per channel; each `send(message)` raises NotifyError(recoverable=...) and never retries."""
