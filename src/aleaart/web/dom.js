// Small DOM helpers shared by the dashboard's pages.

// A <dl>'s children from [term, detail] pairs; a detail may be { text, className, swatches: ["#rrggbb", ...] }.
export function definitionRows(rows) {
  return rows.flatMap(([name, value]) => {
    const term = document.createElement("dt");
    term.textContent = name;
    const detail = document.createElement("dd");
    if (typeof value === "object" && value !== null) {
      detail.textContent = value.text;
      if (value.className) detail.className = value.className;
      for (const colour of value.swatches ?? []) detail.append(swatch(colour));
    } else {
      detail.textContent = value;
    }
    return [term, detail];
  });
}

function swatch(colour) {
  const chip = document.createElement("span");
  chip.className = "swatch";
  chip.style.backgroundColor = colour;
  chip.title = colour;
  return chip;
}
