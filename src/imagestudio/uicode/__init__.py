"""UI code: chat turns in mode "ui" that write one self-contained HTML document (by a language
model, or the built-in composer), as jobs in the generations queue, and its sandboxed preview."""
