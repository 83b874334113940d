// A table filled a page at a time from a list endpoint, with a "More" button for the next page.

import { api, describeError, query } from "./api.js";
import { setBusy, toast } from "./ui.js";

/**
 * The loader of a paged table: `load(true)` fills `body` with the first page again, `load(false)`
 * (the "More" button, which it wires) appends the next one. `filters()` adds query parameters;
 * `shown(page, reset)` runs once a page is in. A failure is a toast; the rows already shown stay.
 */
export function loadPages(path, { body, more, row, filters = () => ({}), shown = () => {} }) {
  let cursor = null;
  async function load(reset) {
    setBusy(more, true);
    try {
      const page = await api.get(`${path}${query({ limit: 50, ...filters(), cursor: reset ? null : cursor })}`);
      if (reset) body.replaceChildren();
      body.append(...page.items.map((item) => row(item)));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      shown(page, reset);
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    } finally {
      setBusy(more, false);
    }
  }
  more.addEventListener("click", () => load(false));
  return load;
}
