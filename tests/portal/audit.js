// Accessibility audit run in the page by test_accessibility.py: returns a list of problems (empty = pass).
() => {
  const problems = [];
  const seen = {};
  document.querySelectorAll("[id]").forEach(el => { seen[el.id] = (seen[el.id] || 0) + 1; });
  Object.entries(seen).filter(([, n]) => n > 1).forEach(([id]) => problems.push("duplicate id " + id));
  const visible = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length)
                        && getComputedStyle(el).visibility !== "hidden";
  document.querySelectorAll("input, select, textarea").forEach(el => {
    if (["hidden", "submit", "button"].includes(el.type)) return;
    const named = (el.labels && el.labels.length) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
    if (!named) problems.push("unlabelled control " + (el.name || el.id));
  });
  document.querySelectorAll("button, a[href]").forEach(el => {
    if (visible(el) && !(el.textContent.trim() || el.getAttribute("aria-label"))) problems.push("nameless " + el.outerHTML.slice(0, 80));
  });
  document.querySelectorAll("canvas").forEach(el => {
    if (!el.getAttribute("aria-label")) problems.push("canvas without a description " + el.id);
  });
  if (document.querySelectorAll("h1").length !== 1) problems.push("expected one h1");
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
  const lum = c => { const v = c.slice(0, 3).map(x => { x /= 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; });
                     return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
  const background = el => { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor);
                               if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c; } return [255, 255, 255]; };
  document.querySelectorAll("body *").forEach(el => {
    if (!visible(el) || ["SCRIPT", "STYLE", "CANVAS", "OPTION"].includes(el.tagName)) return;
    const text = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
    if (!text) return;
    const style = getComputedStyle(el);
    const fg = rgb(style.color), bg = background(el);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
    const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
    if (ratio < need) problems.push(`contrast ${ratio.toFixed(2)} < ${need}: "${el.textContent.trim().slice(0, 40)}"`);
  });
  return problems;
}
