// What the projects pages share: status names and the project list used to group and move sessions.

import { api, query } from "./api.js";

export const STATUS_LABELS = { draft: "Draft", active: "Active", completed: "Completed", archived: "Archived" };

/** Every project of the account (a few pages at most), newest first. */
export async function allProjects() {
  const projects = [];
  let cursor = null;
  do {
    const page = await api.get(`/projects${query({ limit: 100, cursor })}`);
    projects.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return projects;
}
