// What a text search understood: one removable chip per constraint read from the description (scored
// on the collection's measured attributes), the words left to the model, and notices for what neither
// the model nor the attributes can rank. Removing a chip re-runs the search without that constraint.

import { el } from "./dom.js";

function constraintChip(item, { onDrop, onRestore }) {
  const text = el("span", { class: "chip-text" }, item.label);
  const chip = el("li", {
    class: `chip constraint ${item.status === "applied" ? "" : "inactive"}`.trim(),
    "data-key": item.key,
    "data-status": item.status,
    title: `From “${item.words}”, scored on ${item.column}` + (item.status === "applied" ? "" : ` (${item.status})`),
  }, text);
  if (item.status === "applied") {
    chip.append(el("button", {
      type: "button", class: "chip-remove", "aria-label": `Remove ${item.label}`,
      onclick: () => onDrop(item.key),
    }, "×"));
  } else if (item.status === "dropped") {
    chip.append(el("button", {
      type: "button", class: "chip-restore link", "aria-label": `Restore ${item.label}`,
      onclick: () => onRestore(item.key),
    }, "restore"));
  }
  return chip;
}

/** Draw `result.understood`, `result.uncovered` and `result.notices` into `box` (hidden when empty). */
export function renderUnderstanding(box, result, handlers) {
  const understood = result?.understood || [];
  const uncovered = result?.uncovered || [];
  const notices = result?.notices || [];
  const parts = [];
  if (understood.length) {
    parts.push(el("div", { class: "understood-row" },
      el("span", { class: "understood-label", id: "understood-label" }, "Understood:"),
      el("ul", { class: "chips", "aria-labelledby": "understood-label" },
        ...understood.map((item) => constraintChip(item, handlers)))));
  }
  if (uncovered.length) {
    parts.push(el("div", { class: "understood-row" },
      el("span", { class: "understood-label", id: "uncovered-label" }, "Left to the model:"),
      el("ul", { class: "chips", "aria-labelledby": "uncovered-label" },
        ...uncovered.map((u) => el("li", {
          class: "chip uncovered", title: u.property ? `${u.property}: no measured attribute covers it` : "no measured attribute covers it",
        }, u.property ? `${u.words} (${u.property})` : u.words)))));
  }
  for (const n of notices) {
    parts.push(el("p", { class: "notice", role: "note", "data-property": n.property },
      el("strong", {}, "Cannot rank this: "), n.message,
      n.who_can ? el("span", { class: "who-can" }, ` Can rank it: ${n.who_can}.`) : ""));
  }
  box.replaceChildren(...parts);
  box.hidden = parts.length === 0;
}
