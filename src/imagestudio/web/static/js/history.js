// The history rail (every output with its step number) and the lineage view (how steps branch).

import { STATUS_LABELS, outputLabel, shortStepLabel, typeLabel } from "./describe.js";
import { $, $$, h } from "./ui.js";

export class History {
  /** actions: { select(assetId), showTurn(generationId) } */
  constructor(root, store, actions) {
    this.store = store;
    this.actions = actions;
    this.rail = $("[data-rail]", root);
    this.lineage = $("[data-lineage]", root);
    this.railSignature = "";
    this.lineageSignature = "";
    this.setUpTabs(root);
    this.rail.addEventListener("keydown", (event) => this.moveInRail(event));
    store.on("change", () => this.render());
  }

  setUpTabs(root) {
    const tabs = $$('[role="tab"]', root);
    const activate = (tab, focus) => {
      for (const other of tabs) {
        const selected = other === tab;
        other.setAttribute("aria-selected", selected ? "true" : "false");
        other.tabIndex = selected ? 0 : -1;
        document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
      }
      if (focus) tab.focus();
    };
    for (const tab of tabs) {
      tab.addEventListener("click", () => activate(tab, false));
      tab.addEventListener("keydown", (event) => {
        const index = tabs.indexOf(tab);
        if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
          event.preventDefault();
          const next = tabs[(index + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
          activate(next, true);
        }
      });
    }
  }

  render() {
    this.renderRail();
    this.renderLineage();
  }

  renderRail() {
    const entries = this.store.outputs();
    const signature = entries.map((entry) => `${entry.asset.id}:${entry.step}`).join(",") + `|${this.store.selectedAssetId}`;
    if (signature === this.railSignature) return;
    this.railSignature = signature;
    const hadFocus = this.rail.contains(document.activeElement) ? document.activeElement.dataset.assetId : null;
    if (!entries.length) {
      this.rail.replaceChildren(h("li", { class: "rail-empty" }, "Outputs will collect here, one per step."));
      return;
    }
    this.rail.replaceChildren(
      ...entries.map((entry) => {
        const selected = entry.asset.id === this.store.selectedAssetId;
        return h(
          "li",
          { class: "rail-item" },
          h(
            "button",
            {
              type: "button",
              class: "rail-button",
              "aria-pressed": selected ? "true" : "false",
              "aria-label": `${outputLabel(entry)}, ${typeLabel(entry.generation)}`,
              title: entry.generation.prompt || "",
              dataset: { assetId: entry.asset.id },
              on: { click: () => this.actions.select(entry.asset.id) },
            },
            h("img", { src: entry.asset.thumbnail_url, alt: "", loading: "lazy", decoding: "async" }),
            h("span", { class: "rail-step", "aria-hidden": "true" }, shortStepLabel(entry)),
          ),
        );
      }),
    );
    const selected = this.rail.querySelector('[aria-pressed="true"]');
    if (hadFocus) this.rail.querySelector(`[data-asset-id="${hadFocus}"]`)?.focus();
    if (selected) selected.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  moveInRail(event) {
    const keys = { ArrowLeft: -1, ArrowUp: -1, ArrowRight: 1, ArrowDown: 1, Home: -Infinity, End: Infinity };
    if (!(event.key in keys)) return;
    const buttons = $$(".rail-button", this.rail);
    const index = buttons.indexOf(document.activeElement);
    if (index < 0) return;
    event.preventDefault();
    const step = keys[event.key];
    const next = step === -Infinity ? 0 : step === Infinity ? buttons.length - 1 : Math.max(0, Math.min(buttons.length - 1, index + step));
    buttons[next].focus();
  }

  renderLineage() {
    const { store } = this;
    const signature = JSON.stringify(store.lineage) + [...store.generations.values()].map((g) => `${g.id}${g.status}${(g.outputs || []).length}`).join() + store.selectedAssetId;
    if (signature === this.lineageSignature) return;
    this.lineageSignature = signature;
    const known = new Set();
    const walk = (nodes) => nodes.forEach((node) => (known.add(node.generation_id), walk(node.children || [])));
    walk(store.lineage);
    // Steps created since the lineage was loaded hang under their parent once the page refreshes; until then, list them at the end.
    const pending = store.sortedGenerations().filter((generation) => !known.has(generation.id)).map((generation) => ({ generation_id: generation.id, step: store.step(generation.id), children: [] }));
    const roots = [...store.lineage, ...pending];
    if (!roots.length) {
      this.lineage.replaceChildren(h("p", { class: "rail-empty" }, "Branches appear when you iterate from an earlier image."));
      return;
    }
    const branches = countBranches(store.lineage);
    this.lineage.replaceChildren(
      h("p", { class: "lineage-summary" }, branches > 1 ? `${branches} branches` : "One line of steps, no branches yet"),
      h("ul", { class: "lineage-tree", role: "list" }, roots.map((node) => this.renderBranch(node))),
    );
  }

  /** A branch: a row of steps that follow one another, then, at a fork, one nested branch per child. */
  renderBranch(first) {
    const chain = [first];
    let tip = first;
    while ((tip.children || []).length === 1) {
      tip = tip.children[0];
      chain.push(tip);
    }
    const forks = tip.children || [];
    return h(
      "li",
      { class: "lineage-branch" },
      h("ol", { class: "lineage-row", role: "list" }, chain.map((node) => h("li", { class: "lineage-cell" }, this.renderNode(node)))),
      forks.length ? h("ul", { class: "lineage-children", role: "list", "aria-label": `${forks.length} branches from step ${tip.step}` }, forks.map((child) => this.renderBranch(child))) : null,
    );
  }

  renderNode(node) {
    const generation = this.store.generations.get(node.generation_id);
    const output = generation && (generation.outputs || [])[0];
    const containsSelection = generation && (generation.outputs || []).some((asset) => asset.id === this.store.selectedAssetId);
    const status = generation ? generation.status : "succeeded";
    const label = `Step ${node.step}${generation ? `, ${typeLabel(generation)}` : ""}${status !== "succeeded" ? `, ${STATUS_LABELS[status] || status}` : ""}`;
    return h(
      "button",
      {
        type: "button",
        class: `lineage-node lineage-${status}`,
        "aria-current": containsSelection ? "true" : null,
        "aria-label": label,
        title: generation ? generation.prompt : "",
        dataset: { generationId: node.generation_id },
        on: {
          click: () => (output ? this.actions.select(output.id) : this.actions.showTurn(node.generation_id)),
        },
      },
      output ? h("img", { src: output.thumbnail_url, alt: "", loading: "lazy" }) : h("span", { class: "lineage-placeholder", "aria-hidden": "true" }),
      h("span", { class: "lineage-step", "aria-hidden": "true" }, String(node.step)),
    );
  }
}

/** Leaves of the lineage forest: each is the tip of one branch. */
export function countBranches(nodes) {
  let leaves = 0;
  const walk = (list) => {
    for (const node of list) {
      if (!node.children || node.children.length === 0) leaves += 1;
      else walk(node.children);
    }
  };
  walk(nodes);
  return leaves;
}
