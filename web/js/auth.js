// The API key, for a server started with keys: asked once in a dialog when a call is refused with
// 401, kept in sessionStorage (this tab, until it closes) and sent as `Authorization: Bearer KEY`.

import { el } from "./dom.js";

const SLOT = "clsp-search-api-key";
let pending = null;
let remembered = ""; // when sessionStorage is unavailable

/** The key of this session, or "" when none was given. */
export function apiKey() {
  try {
    return sessionStorage.getItem(SLOT) || remembered;
  } catch {
    return remembered;
  }
}

/** `options` for fetch with the key's Authorization header added (when there is a key). */
export function withKey(options = {}) {
  const key = apiKey();
  if (!key) return options;
  return { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${key}` } };
}

function dialog(message) {
  const input = el("input", { id: "api-key", type: "password", name: "key", required: true, autocomplete: "off",
    spellcheck: "false", minlength: 16 });
  const node = el("dialog", { id: "key-dialog", class: "key-dialog", "aria-labelledby": "key-title" },
    el("form", { method: "dialog" },
      el("h2", { id: "key-title" }, "API key"),
      el("p", { class: "muted" }, message),
      el("label", { for: "api-key" }, "Key"),
      input,
      el("div", { class: "key-actions" },
        el("button", { type: "submit", value: "cancel", class: "secondary", formnovalidate: true }, "Cancel"),
        el("button", { type: "submit", value: "use", class: "primary" }, "Use key"))));
  return { node, input };
}

/**
 * Ask for a key (once, however many calls are waiting for it); resolves to the key, stored for the
 * session, or null when the person cancels.
 */
export function askForKey(rejected) {
  if (pending) return pending;
  const message = rejected
    ? "That key was not accepted. Enter one of this server's API keys."
    : "This server needs an API key. It is kept for this tab only.";
  const { node, input } = dialog(message);
  document.body.append(node);
  pending = new Promise((resolve) => {
    node.addEventListener("close", () => {
      const key = node.returnValue === "use" ? input.value.trim() : "";
      node.remove();
      pending = null;
      if (!key) {
        resolve(null);
        return;
      }
      remembered = key;
      try {
        sessionStorage.setItem(SLOT, key);
      } catch {
        // storage refused (private mode): the key still works for this page
      }
      resolve(key);
    }, { once: true });
    node.showModal();
    input.focus();
  });
  return pending;
}
