// The Verify panel: a file (dropped or picked) or a token's stored image, checked by POST /verify, and both of its
// answers in words: are the credentials intact, and is it an intact aleaart image (with the token's re-render).
import { ApiError, postFile } from "./api.js";
import { definitionRows } from "./dom.js";

const $ = (id) => document.getElementById(id);

const CREDENTIALS = {
  valid: "Intact, signed by a signer this service's trust anchors know.",
  untrusted: "Intact, signed by a signer no trust anchor here knows (every local key is).",
  invalid: "A check failed: the file, or a file it was made from, changed after it was signed.",
  unsigned: "The file has no Content Credentials.",
  unreadable: "The file's Content Credentials cannot be read.",
};

const RERENDER = {
  exact: "The same pixels, rendered again here.",
  perceptual: "The same picture (another recipe class: see the differences).",
  mismatch: "A different picture: this is not what these parameters make.",
};

let fileUrl = null;

function yesNo(value) {
  return value === null || value === undefined ? "unknown" : value ? "yes" : "no";
}

function aleaartInWords(credentials, recipeClass) {
  if (credentials.aleaart) return `Yes, recipe class ${recipeClass || "-"}`;
  if (credentials.generator) return `No: ${credentials.generator} made these credentials, not aleaart`;
  return "No";
}

function rows(answer) {
  const { credentials, token, rerender } = answer;
  const failing = credentials.failingChecks.map((c) => `${c.code} (${c.where})`).join("; ");
  const shown = [
    ["Credentials", { text: `${credentials.verdict}: ${CREDENTIALS[credentials.verdict]}`,
      className: ["valid", "untrusted"].includes(credentials.verdict) ? "match" : "mismatch" }],
    ["Signer", `${credentials.signer || "-"}${credentials.signerTrusted ? " (trusted)" : ""}`],
    ["Failing checks", failing || "none"],
    ["aleaart image", aleaartInWords(credentials, answer.recipeClass)],
    ["Bytes changed", yesNo(credentials.bytesChanged)],
    ["Pixels changed", yesNo(credentials.pixelsChanged)],
  ];
  if (token) {
    shown.push([`Token ${token.tokenId}`, token.match ? { text: "Its parameters equal the chain's", className: "match" }
      : { text: "Its recorded parameters are not the chain's", className: "mismatch" }]);
  }
  if (rerender) {
    shown.push(["Re-render", { text: `${rerender.verdict}: ${RERENDER[rerender.verdict]} (pHash distance `
      + `${rerender.phashDistance} of 64, threshold ${rerender.threshold})`,
    className: rerender.verdict === "mismatch" ? "mismatch" : "match" }]);
    for (const d of rerender.recipeDifferences) shown.push([`  ${d.field}`, `file ${d.file}, here ${d.here}`]);
  }
  for (const note of answer.notes) shown.push(["Note", note]);
  return shown;
}

function show(answer, file) {
  $("verify-verdict").textContent = answer.ok ? "✓ An intact aleaart image" : "✗ Not an intact aleaart image"
    + (!answer.credentials.aleaart && ["valid", "untrusted"].includes(answer.credentials.verdict)
      ? " (its credentials are intact: another tool made them)" : "");
  $("verify-verdict").className = answer.ok ? "verdict match" : "verdict mismatch";
  $("verify-list").replaceChildren(...definitionRows(rows(answer)));
  if (fileUrl) URL.revokeObjectURL(fileUrl);
  fileUrl = file.type.startsWith("image/") ? URL.createObjectURL(file) : null;
  const compare = answer.rerender && answer.rerender.imageUrl && fileUrl;
  $("verify-compare").hidden = !compare;
  if (compare) {
    $("verify-file-image").src = fileUrl;
    $("verify-rerender-image").src = answer.rerender.imageUrl;
  }
  $("verify-result").hidden = false;
  $("verify-verdict").focus();
}

// The file to check: the one picked or dropped, else the token's stored image (made if it is not yet).
async function fileToCheck(tokenId) {
  const picked = $("verify-file").files[0];
  if (picked) return picked;
  if (!tokenId) throw new ApiError("Pick or drop a file, or give a token id.", { kind: "input" });
  const response = await fetch(`/tokens/${tokenId}/image.png`, { headers: { Accept: "image/png" } });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new ApiError(data.error || `The backend answered ${response.status}`, { status: response.status });
  }
  return new File([await response.blob()], `token-${tokenId}.png`, { type: "image/png" });
}

async function verify(event) {
  event?.preventDefault();
  const status = $("verify-status");
  const tokenId = $("verify-token").value.trim();
  $("verify-result").hidden = true;
  try {
    status.textContent = "Checking…";
    const file = await fileToCheck(tokenId);
    const query = new URLSearchParams({ rerender: String($("verify-rerender").checked) });
    if (tokenId) query.set("tokenId", tokenId);
    if ($("verify-rerender").checked) status.textContent = "Checking, and rendering it again here…";
    const answer = await postFile(`/verify?${query}`, file);
    status.textContent = "";
    show(answer, file);
  } catch (error) {
    status.textContent = error.message;
  }
}

export function setUpVerify() {
  $("verify-form").addEventListener("submit", verify);
  const drop = $("verify-drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) {
      $("verify-file").files = event.dataTransfer.files;
      verify();
    }
  });
  $("verify-file").addEventListener("change", () => { $("verify-drop").textContent = $("verify-file").files[0]?.name
    ?? "Drop a file here"; });
}

