// Small DOM helpers shared by the dashboard's pages.

// A <dl>'s children from [term, detail] pairs; a detail may be { text, className }.
export function definitionRows(rows) {
  return rows.flatMap(([name, value]) => {
    const term = document.createElement("dt");
    term.textContent = name;
    const detail = document.createElement("dd");
    if (typeof value === "object" && value !== null) {
      detail.textContent = value.text;
      detail.className = value.className;
    } else {
      detail.textContent = value;
    }
    return [term, detail];
  });
}
