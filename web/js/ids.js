// Client-chosen ids: `<prefix>-<n>`, the prefix random per page, so a re-send is recognised.

export function randomPrefix() {
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
