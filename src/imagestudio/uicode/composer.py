"""The built-in UI composer: a real, deterministic page built from templates and the words of the
request, so UI generation works with no language model configured. It is labelled as not an AI
model wherever it is shown (and in the document's own `generator` meta).

`compose(brief)` renders a `Brief` (see brief.py) as one self-contained HTML document: inline CSS
(custom properties for the theme, accent, button size and corners; grids that stack at phone
width), inline JavaScript for what the sections do, no reference to the network.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from imagestudio.uicode.brief import Brief

GENERATOR = "imagestudio built-in UI composer (not an AI model)"
COMPOSER_MODEL = "ui-composer"
_BUTTON_SIZES = {-1: (6, 12, 13), 0: (10, 18, 15), 1: (14, 26, 18), 2: (18, 34, 21), 3: (22, 42, 24)}
_GAPS = {"compact": 12, "normal": 24, "spacious": 40}


def title_of(brief: Brief) -> str:
    names = {"hero": "landing page", "login": "sign-in form", "signup": "sign-up form", "todo": "task list"}
    shown = [names.get(name, name) for name in brief.sections if name not in ("navbar", "footer")] or ["page"]
    look = ", dark theme" if brief.dark else ""
    return f"{brief.subject}: {', '.join(shown)}{look}"[:200]


def compose(brief: Brief) -> str:
    body = "\n".join(_SECTIONS[name](brief) for name in brief.sections)
    scripts = "\n".join(_scripts(brief))
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{GENERATOR}">
<title>{escape(title_of(brief))}</title>
<style>
{_styles(brief)}
</style>
</head>
<body>
{body}
<script>
{scripts}
</script>
</body>
</html>
"""


def _styles(brief: Brief) -> str:
    pad_y, pad_x, size = _BUTTON_SIZES[brief.button_step]
    if brief.dark:
        colours = "--bg: #0f172a; --fg: #e2e8f0; --muted: #94a3b8; --card: #1e293b; --line: #334155;"
    else:
        colours = "--bg: #f8fafc; --fg: #0f172a; --muted: #475569; --card: #ffffff; --line: #e2e8f0;"
    font = "Georgia, 'Times New Roman', serif" if brief.serif else "system-ui, -apple-system, 'Segoe UI', sans-serif"
    return f""":root {{ {colours} --accent: {brief.accent}; --radius: {brief.radius}px; --gap: {_GAPS[brief.density]}px;
  --button-pad: {pad_y}px {pad_x}px; --button-size: {size}px; }}
* {{ box-sizing: border-box; }}
body {{ margin: 0; font-family: {font}; background: var(--bg); color: var(--fg); line-height: 1.5; }}
section, nav, footer {{ padding: var(--gap) clamp(16px, 5vw, 64px); }}
h1 {{ font-size: clamp(28px, 5vw, 48px); margin: 0 0 12px; }}
h2 {{ font-size: 24px; margin: 0 0 var(--gap); }}
p {{ color: var(--muted); }}
.grid {{ display: grid; gap: var(--gap); grid-template-columns: repeat(auto-fit, minmax(220px, 1fr)); }}
.card {{ background: var(--card); border: 1px solid var(--line); border-radius: var(--radius); padding: var(--gap); }}
.button {{ display: inline-block; border: 0; cursor: pointer; background: var(--accent); color: #fff;
  padding: var(--button-pad); font-size: var(--button-size); border-radius: min(var(--radius), 999px);
  font-weight: 600; text-decoration: none; }}
.button.secondary {{ background: transparent; color: var(--fg); border: 1px solid var(--line); }}
nav {{ display: flex; align-items: center; justify-content: space-between; gap: 16px; flex-wrap: wrap;
  border-bottom: 1px solid var(--line); }}
nav .brand {{ font-weight: 700; font-size: 20px; color: var(--fg); text-decoration: none; }}
nav ul {{ display: flex; gap: 16px; list-style: none; margin: 0; padding: 0; flex-wrap: wrap; }}
nav a {{ color: var(--muted); text-decoration: none; }}
.hero {{ text-align: center; padding-top: calc(var(--gap) * 3); padding-bottom: calc(var(--gap) * 3); }}
.hero .actions {{ display: flex; gap: 12px; justify-content: center; flex-wrap: wrap; margin-top: 24px; }}
form.card {{ max-width: 420px; margin: 0 auto; display: grid; gap: 14px; }}
label {{ display: grid; gap: 6px; font-weight: 600; }}
input, textarea {{ font: inherit; padding: 10px 12px; border-radius: min(var(--radius), 12px);
  border: 1px solid var(--line); background: var(--bg); color: var(--fg); }}
.notice {{ min-height: 1.5em; color: var(--accent); font-weight: 600; margin: 0; }}
.price {{ font-size: 36px; font-weight: 700; color: var(--fg); }}
.featured {{ outline: 3px solid var(--accent); }}
.stat {{ font-size: 30px; font-weight: 700; color: var(--fg); }}
.bars {{ display: flex; align-items: flex-end; gap: 8px; height: 140px; }}
.bars span {{ flex: 1; background: var(--accent); border-radius: 4px 4px 0 0; }}
table {{ width: 100%; border-collapse: collapse; }}
th, td {{ text-align: left; padding: 10px; border-bottom: 1px solid var(--line); }}
.table-wrap {{ overflow-x: auto; }}
.todo li {{ display: flex; justify-content: space-between; gap: 8px; padding: 8px 0;
  border-bottom: 1px solid var(--line); }}
.todo ul {{ list-style: none; padding: 0; }}
details {{ padding: 12px 0; border-bottom: 1px solid var(--line); }}
summary {{ cursor: pointer; font-weight: 600; }}
footer {{ border-top: 1px solid var(--line); color: var(--muted); text-align: center; }}"""


def _navbar(brief: Brief) -> str:
    items = "".join(f'<li><a href="#{name}">{name.capitalize()}</a></li>' for name in brief.sections[1:4])
    action = '<a class="button" href="#signup">Get started</a>' if not brief.has("login") else ""
    return f"""<nav id="navbar" aria-label="Main">
  <a class="brand" href="#">{escape(brief.subject)}</a>
  <ul>{items}</ul>
  {action}
</nav>"""


def _hero(brief: Brief) -> str:
    lead = escape(brief.words[0]) if brief.words else "Built from your description."
    return f"""<section class="hero" id="hero">
  <h1>{escape(brief.subject)}, made simple</h1>
  <p>{lead}</p>
  <div class="actions"><a class="button" href="#pricing">Start free</a>
  <a class="button secondary" href="#features">Learn more</a></div>
</section>"""


def _login(brief: Brief) -> str:
    return f"""<section id="login">
  <form class="card" data-form="login" novalidate>
    <h2>Sign in to {escape(brief.subject)}</h2>
    <label>Email <input type="email" name="email" autocomplete="email" required></label>
    <label>Password <input type="password" name="password" autocomplete="current-password" required minlength="8">
    </label>
    <button class="button" type="submit">Sign in</button>
    <p class="notice" role="status" aria-live="polite"></p>
  </form>
</section>"""


def _signup(brief: Brief) -> str:
    return f"""<section id="signup">
  <form class="card" data-form="signup" novalidate>
    <h2>Create your {escape(brief.subject)} account</h2>
    <label>Name <input name="name" autocomplete="name" required></label>
    <label>Email <input type="email" name="email" autocomplete="email" required></label>
    <label>Password <input type="password" name="password" autocomplete="new-password" required minlength="8">
    </label>
    <button class="button" type="submit">Create account</button>
    <p class="notice" role="status" aria-live="polite"></p>
  </form>
</section>"""


def _dashboard(brief: Brief) -> str:
    stats = [("Revenue", "$48,210"), ("Active users", "2,931"), ("Conversion", "3.8%"), ("Open tickets", "17")]
    cards = "".join(f'<div class="card"><p>{label}</p><div class="stat">{value}</div></div>' for label, value in stats)
    heights = (40, 65, 52, 80, 72, 95, 60)
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    bars = "".join(f'<span style="height: {h}%" title="{d}: {h}"></span>' for h, d in zip(heights, days, strict=True))
    return f"""<section id="dashboard">
  <h2>{escape(brief.subject)} overview</h2>
  <div class="grid">{cards}</div>
  <div class="card" style="margin-top: var(--gap)"><p>This week</p><div class="bars" role="img"
    aria-label="Activity from Monday to Sunday">{bars}</div></div>
</section>"""


def _features(brief: Brief) -> str:
    features = [
        ("Fast", "Loads in a blink on any device."),
        ("Simple", "Everything where you expect it."),
        ("Secure", "Your data stays yours."),
    ]
    cards = "".join(f'<div class="card"><h3>{name}</h3><p>{text}</p></div>' for name, text in features)
    return f"""<section id="features">
  <h2>Why {escape(brief.subject)}</h2>
  <div class="grid">{cards}</div>
</section>"""


def _cards(brief: Brief) -> str:
    people = [("Ada", "Design"), ("Grace", "Engineering"), ("Linus", "Support")]
    cards = "".join(
        f'<div class="card"><h3>{name}</h3><p>{role} at {escape(brief.subject)}</p>'
        f'<button class="button" type="button">Follow</button></div>'
        for name, role in people
    )
    return f"""<section id="cards">
  <h2>{escape(brief.subject)}</h2>
  <div class="grid">{cards}</div>
</section>"""


def _pricing(brief: Brief) -> str:
    plans = [("Starter", 9, "For trying it out"), ("Pro", 29, "For growing teams"), ("Business", 79, "For companies")]
    cards = "".join(
        f'<div class="card{" featured" if name == "Pro" else ""}"><h3>{name}</h3>'
        f'<div class="price" data-monthly="{price}">${price}</div><p>{text}</p>'
        f'<a class="button" href="#signup">Choose {name}</a></div>'
        for name, price, text in plans
    )
    return f"""<section id="pricing">
  <h2>{escape(brief.subject)} pricing</h2>
  <label style="display: inline-flex; gap: 8px; align-items: center; margin-bottom: var(--gap)">
    <input type="checkbox" data-yearly> Pay yearly (two months free)</label>
  <div class="grid">{cards}</div>
</section>"""


def _table(brief: Brief) -> str:
    rows = [
        ("#1042", "Ada Lovelace", "Paid", "$120.00"),
        ("#1043", "Alan Turing", "Pending", "$75.50"),
        ("#1044", "Grace Hopper", "Refunded", "$42.00"),
    ]
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"""<section id="table">
  <h2>{escape(brief.subject)} orders</h2>
  <div class="card table-wrap"><table><thead><tr><th>Order</th><th>Customer</th><th>Status</th><th>Total</th></tr>
  </thead><tbody>{body}</tbody></table></div>
</section>"""


def _todo(brief: Brief) -> str:
    return f"""<section id="todo" class="todo">
  <form class="card" data-form="todo">
    <h2>{escape(brief.subject)} tasks</h2>
    <label>New task <input name="task" required></label>
    <button class="button" type="submit">Add</button>
    <ul aria-label="Tasks"><li><span>Write the first task</span></li></ul>
  </form>
</section>"""


def _testimonials(brief: Brief) -> str:
    quotes = [("It changed how we work.", "Mia, designer"), ("Setup took five minutes.", "Sam, founder")]
    cards = "".join(f'<blockquote class="card"><p>“{q}”</p><footer>{who}</footer></blockquote>' for q, who in quotes)
    return f"""<section id="testimonials">
  <h2>People love {escape(brief.subject)}</h2>
  <div class="grid">{cards}</div>
</section>"""


def _faq(brief: Brief) -> str:
    questions = [("Is there a free trial?", "Yes, 14 days, no card needed."), ("Can I cancel?", "Any time.")]
    items = "".join(f"<details><summary>{q}</summary><p>{a}</p></details>" for q, a in questions)
    return f"""<section id="faq">
  <h2>{escape(brief.subject)} questions</h2>
  {items}
</section>"""


def _contact(brief: Brief) -> str:
    return f"""<section id="contact">
  <form class="card" data-form="contact" novalidate>
    <h2>Contact {escape(brief.subject)}</h2>
    <label>Email <input type="email" name="email" required></label>
    <label>Message <textarea name="message" rows="4" required></textarea></label>
    <button class="button" type="submit">Send</button>
    <p class="notice" role="status" aria-live="polite"></p>
  </form>
</section>"""


def _footer(brief: Brief) -> str:
    return f"""<footer id="footer"><p>© {escape(brief.subject)}. Composed by the built-in UI composer from your words
  (not an AI model).</p></footer>"""


_SECTIONS: dict[str, Callable[[Brief], str]] = {
    "navbar": _navbar,
    "hero": _hero,
    "login": _login,
    "signup": _signup,
    "dashboard": _dashboard,
    "features": _features,
    "cards": _cards,
    "pricing": _pricing,
    "table": _table,
    "todo": _todo,
    "testimonials": _testimonials,
    "faq": _faq,
    "contact": _contact,
    "footer": _footer,
}

# Buttons, not submit events: a sandboxed preview (no allow-forms) never fires "submit".
_FORM_SCRIPT = """document.querySelectorAll("form[data-form]:not([data-form=todo])").forEach((form) => {
  form.querySelector("button[type=submit]").addEventListener("click", (event) => {
    event.preventDefault();
    const notice = form.querySelector(".notice");
    const invalid = [...form.elements].find((field) => field.willValidate && !field.checkValidity());
    notice.textContent = invalid ? `Please check ${invalid.name}.` : "Thanks! (a preview: nothing was sent)";
  });
});"""
_FORMS = ("login", "signup", "contact")


def _scripts(brief: Brief) -> list[str]:
    scripts = [_FORM_SCRIPT] if any(brief.has(name) for name in _FORMS) else []
    return scripts + [_SCRIPTS[name] for name in brief.sections if name in _SCRIPTS]


_SCRIPTS = {
    "pricing": """document.querySelectorAll("[data-yearly]").forEach((toggle) => {
  toggle.addEventListener("change", () => {
    document.querySelectorAll("[data-monthly]").forEach((price) => {
      const monthly = Number(price.dataset.monthly);
      price.textContent = toggle.checked ? `$${monthly * 10}/yr` : `$${monthly}`;
    });
  });
});""",
    "todo": """document.querySelectorAll("form[data-form=todo]").forEach((form) => {
  form.querySelector("button[type=submit]").addEventListener("click", (event) => {
    event.preventDefault();
    if (!form.elements.task.value.trim()) return;
    const item = document.createElement("li");
    const text = document.createElement("span");
    text.textContent = form.elements.task.value;
    item.append(text);
    form.querySelector("ul").append(item);
    form.reset();
  });
});""",
}
