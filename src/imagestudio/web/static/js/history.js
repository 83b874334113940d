// The history rail (every output with its step number) and the lineage view (how steps branch).

import { STATUS_LABELS, shortStepLabel, typeLabel } from "./describe.js";
import { $, $$, h, rovingFocus, setTabStop } from "./ui.js";

export class History {
  /** actions: { select(assetId), showTurn(generationId), reveal(generationId) -> Promise (loads an older step) } */
  constructor(root, store, actions) {
    this.store = store;
    this.actions = actions;
    this.rail = $("[data-rail]", root);
    this.lineage = $("[data-lineage]", root);
    this.railSignature = "";
    this.lineageSignature = "";
    this.setUpTabs(root);
    rovingFocus(this.rail, ".rail-button", "[data-rail]");
    rovingFocus(this.lineage, ".lineage-node", "[data-lineage]");
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
              // Starts with the visible number ("2.3"), so speech input can name it by what it shows.
              "aria-label": `Step ${shortStepLabel(entry)}, ${typeLabel(entry.generation)}`,
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
    setTabStop($$(".rail-button", this.rail), selected);
    if (hadFocus) this.rail.querySelector(`[data-asset-id="${hadFocus}"]`)?.focus();
    if (selected) revealInside(this.rail, selected);
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
    setTabStop($$(".lineage-node", this.lineage), this.lineage.querySelector('[aria-current="true"]'));
  }

  async choose(generationId, output) {
    if (!this.store.generations.has(generationId) && this.actions.reveal) await this.actions.reveal(generationId).catch(() => null);
    if (output && this.store.findAsset(output.id)) this.actions.select(output.id);
    else this.actions.showTurn(generationId);
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
    // A step not loaded yet shows from its lineage node; choosing it loads the pages up to it.
    const generation = this.store.generations.get(node.generation_id);
    const output = generation ? (generation.outputs || [])[0] : node.thumbnail_asset_id && { id: node.thumbnail_asset_id, thumbnail_url: `/api/v1/assets/${node.thumbnail_asset_id}/thumbnail` };
    const containsSelection = generation && (generation.outputs || []).some((asset) => asset.id === this.store.selectedAssetId);
    const status = generation ? generation.status : node.status || "succeeded";
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
          click: () => this.choose(node.generation_id, output),
        },
      },
      output ? h("img", { src: output.thumbnail_url, alt: "", loading: "lazy" }) : h("span", { class: "lineage-placeholder", "aria-hidden": "true" }),
      h("span", { class: "lineage-step", "aria-hidden": "true" }, String(node.step)),
    );
  }
}

/** Scrolls only the container to show the item: scrollIntoView would also scroll the page on arrival. */
function revealInside(container, item) {
  const box = container.getBoundingClientRect();
  const target = item.getBoundingClientRect();
  if (target.left < box.left) container.scrollLeft -= box.left - target.left;
  else if (target.right > box.right) container.scrollLeft += target.right - box.right;
  if (target.top < box.top) container.scrollTop -= box.top - target.top;
  else if (target.bottom > box.bottom) container.scrollTop += target.bottom - box.bottom;
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
