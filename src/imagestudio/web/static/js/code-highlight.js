// Syntax highlighting for generated HTML documents (with their CSS and JavaScript), by a small tokenizer.
// It builds DOM nodes (text is always set as text, never parsed as HTML), so highlighting untrusted code
// can never run it. Unknown text is kept as plain text: the output always reads back as the input.

import { h } from "./ui.js";

const JS_KEYWORDS = new Set(
  ("break case catch class const continue debugger default delete do else export extends false finally for function " +
    "if import in instanceof let new null of return static super switch this throw true try typeof undefined var void " +
    "while with yield async await").split(" "),
);

/** Tokens of an HTML document: [kind, text] pairs, in order, whose texts join back to `code`. */
export function tokenizeHtml(code) {
  const tokens = [];
  let at = 0;
  const tag = /<!--[\s\S]*?(?:-->|$)|<!doctype[^>]*>|<\/?[A-Za-z][\w:-]*(?:\s+[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*\s*\/?>/gi;
  let match;
  while ((match = tag.exec(code))) {
    if (match.index > at) tokens.push(["text", code.slice(at, match.index)]);
    const text = match[0];
    if (text.startsWith("<!--")) tokens.push(["comment", text]);
    else if (text.toLowerCase().startsWith("<!doctype")) tokens.push(["meta", text]);
    else tokens.push(...tagTokens(text));
    at = tag.lastIndex;
    const name = /^<([A-Za-z][\w-]*)/.exec(text);
    const inner = name && ["style", "script"].includes(name[1].toLowerCase()) ? name[1].toLowerCase() : null;
    if (inner) {
      const close = new RegExp(`</${inner}\\s*>`, "ig");
      close.lastIndex = at;
      const end = close.exec(code);
      const stop = end ? end.index : code.length;
      tokens.push(...(inner === "style" ? tokenizeCss(code.slice(at, stop)) : tokenizeJs(code.slice(at, stop))));
      at = stop;
      tag.lastIndex = stop;
    }
  }
  if (at < code.length) tokens.push(["text", code.slice(at)]);
  return tokens;
}

function tagTokens(text) {
  const tokens = [];
  const head = /^<\/?[\w:-]+/.exec(text)[0];
  tokens.push(["tag", head]);
  const rest = text.slice(head.length);
  const attribute = /(\s+)([^\s"'>/=]+)(?:(\s*=\s*)("[^"]*"|'[^']*'|[^\s"'=<>`]+))?|(\s*\/?>)/g;
  let match;
  let at = 0;
  while ((match = attribute.exec(rest))) {
    if (match.index > at) tokens.push(["text", rest.slice(at, match.index)]);
    if (match[5] !== undefined) tokens.push(["tag", match[5]]);
    else {
      tokens.push(["text", match[1]], ["attr", match[2]]);
      if (match[3] !== undefined) tokens.push(["punct", match[3]], ["string", match[4]]);
    }
    at = attribute.lastIndex;
    if (match[0].length === 0) attribute.lastIndex += 1;
  }
  if (at < rest.length) tokens.push(["text", rest.slice(at)]);
  return tokens;
}

/** CSS: comments, strings, at-rules, selectors, properties and values. */
export function tokenizeCss(css) {
  const tokens = [];
  const pattern = /\/\*[\s\S]*?(?:\*\/|$)|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|@[\w-]+|([\w-]+)(\s*:)(?![^{};]*\{)|#[0-9a-fA-F]{3,8}\b|-?\d*\.?\d+(?:px|em|rem|%|vh|vw|s|ms|fr|deg)?\b|[{};:,()]/g;
  let at = 0;
  let match;
  while ((match = pattern.exec(css))) {
    if (match.index > at) tokens.push(["selector", css.slice(at, match.index)]);
    const text = match[0];
    if (text.startsWith("/*")) tokens.push(["comment", text]);
    else if (text[0] === '"' || text[0] === "'") tokens.push(["string", text]);
    else if (text[0] === "@") tokens.push(["keyword", text]);
    else if (match[1] !== undefined) tokens.push(["property", match[1]], ["punct", match[2]]);
    else if (/^[{};:,()]$/.test(text)) tokens.push(["punct", text]);
    else tokens.push(["number", text]);
    at = pattern.lastIndex;
  }
  if (at < css.length) tokens.push(["selector", css.slice(at)]);
  return tokens;
}

/** JavaScript: comments, strings and template literals, keywords, numbers. */
export function tokenizeJs(js) {
  const tokens = [];
  const pattern = /\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$)|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`|\b\d+(?:\.\d+)?\b|\b[A-Za-z_$][\w$]*\b/g;
  let at = 0;
  let match;
  while ((match = pattern.exec(js))) {
    if (match.index > at) tokens.push(["text", js.slice(at, match.index)]);
    const text = match[0];
    if (text.startsWith("//") || text.startsWith("/*")) tokens.push(["comment", text]);
    else if (/^["'`]/.test(text)) tokens.push(["string", text]);
    else if (/^\d/.test(text)) tokens.push(["number", text]);
    else tokens.push([JS_KEYWORDS.has(text) ? "keyword" : "text", text]);
    at = pattern.lastIndex;
  }
  if (at < js.length) tokens.push(["text", js.slice(at)]);
  return tokens;
}

/** A <code> element showing `code` highlighted. */
export function highlightedCode(code) {
  const nodes = tokenizeHtml(code).map(([kind, text]) =>
    kind === "text" ? document.createTextNode(text) : h("span", { class: `tok-${kind}`, text }),
  );
  return h("code", { class: "code-html" }, nodes);
}
