// The dashboard: token → parameters → generate (with live progress) → result, plus a gallery.
import { ApiError, apiKey, events, request, setApiKey, uploadModel } from "./api.js";
import { definitionRows } from "./dom.js";
import { setUpVerify } from "./verify.js";

const $ = (id) => document.getElementById(id);
const GALLERY_PAGE = 12;

const state = {
  tables: null,
  source: null, // { kind: "token", tokenId, params } | { kind: "manual", params }
  job: null,
  result: null, // the image shown under "Result": the kinds offered from an image start from it
  galleryOffset: 0,
  keyRequired: false,
  adminKey: "",
};

// Errors and status

function showError(error) {
  const box = $("error");
  box.textContent = error instanceof ApiError || error instanceof Error ? error.message : String(error);
  box.hidden = false;
  if (error instanceof ApiError && error.kind === "key") showKeyForm();
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

async function refreshHealth() {
  const badge = $("status");
  try {
    const health = await request("GET", "/health");
    state.keyRequired = health.api_key_required;
    if (health.api_key_required && !apiKey()) showKeyForm();
    if (health.model_loaded) {
      badge.className = "badge ok";
      badge.textContent = `Model loaded · ${health.device} · queue ${health.queue_depth}/${health.max_queue}`;
    } else if (health.model_loading) {
      badge.className = "badge warn";
      badge.textContent = "Loading the model…";
    } else {
      badge.className = "badge bad";
      badge.textContent = `Model not loaded: ${health.model_error}`;
    }
  } catch (error) {
    badge.className = "badge bad";
    badge.textContent = error.message;
  }
}

function showKeyForm() {
  $("key-form").hidden = false;
}

// The key this browser session sends: its name, scopes and what is left of its limits.
async function showKey() {
  const line = $("key-status");
  if (!apiKey()) {
    line.hidden = true;
    return;
  }
  try {
    const key = await request("GET", "/me");
    const left = [];
    if (key.left.rendersToday != null) left.push(`${key.left.rendersToday} renders left today`);
    if (key.left.queued != null) left.push(`${key.left.queued} more at once`);
    if (key.left.requests != null) left.push(`${key.left.requests} requests now`);
    line.textContent = `Key ${key.name} (${key.scopes.join(", ")})${left.length ? " · " + left.join(" · ") : ""}`;
    line.hidden = false;
  } catch (error) {
    line.hidden = true;
    if (error instanceof ApiError && error.kind === "key") showKeyForm();
  }
}

// Parameters

function describe(params) {
  const t = state.tables;
  const aspect = t.aspects[params.aspectIndex];
  const palette = t.palettes[params.paletteId];
  return [
    ["Prompt", t.prompts[params.promptIndex]],
    ["Style", t.styles[params.styleIndex]],
    ["Sampler", t.samplers[params.samplerIndex]],
    ["Aspect", `${aspect.name} ${aspect.width}×${aspect.height}`],
    ["Steps", String(params.steps)],
    ["CFG", String(params.cfg / 10)],
    ["Seed", String(params.latentSeed)],
    ["Palette", palette ? { text: `${palette.name} `, swatches: palette.colours } : String(params.paletteId)],
  ];
}

function showParams(source, { derivedMatch } = {}) {
  state.source = source;
  const list = $("params");
  const rows = describe(source.params);
  if (source.kind === "token") rows.unshift(["Token", `#${source.tokenId}`]);
  else rows.unshift(["Source", "entered by hand"]);
  if (derivedMatch !== undefined) {
    rows.push(["Matches seed", {
      className: derivedMatch ? "match" : "mismatch",
      text: derivedMatch ? "yes, derived from the token's seed" : "NO: the chain's parameters differ from its seed",
    }]);
  }
  list.replaceChildren(...definitionRows(rows));
  list.hidden = false;
  $("params-empty").hidden = true;
  $("generate").disabled = false;
}

async function loadToken(path) {
  clearError();
  try {
    const token = await request("GET", path);
    $("token-id").value = token.tokenId;
    showParams({ kind: "token", tokenId: token.tokenId, params: token.parameters },
      { derivedMatch: token.derivedMatch });
  } catch (error) {
    showError(error);
  }
}

function buildManualForm() {
  const box = $("manual-fields");
  for (const field of state.tables.fields) {
    const label = document.createElement("label");
    label.textContent = `${field.label} (${field.min}–${field.max})`;
    const input = document.createElement("input");
    Object.assign(input, { type: "number", name: field.key, min: field.min, max: field.max, step: 1, required: true });
    input.value = field.min;
    label.append(input);
    box.append(label);
  }
}

function manualParams() {
  const data = new FormData($("manual-form"));
  return Object.fromEntries(state.tables.fields.map((f) => [f.key, Number(data.get(f.key))]));
}

// Generation

function setBusy(busy) {
  $("generate").disabled = busy;
  for (const button of $("offers").querySelectorAll("button")) button.disabled = busy;
  $("cancel").hidden = !busy;
  $("progress-box").hidden = !busy;
}

function showProgress(job) {
  const bar = $("progress");
  bar.max = Math.max(job.totalSteps, 1);
  bar.value = job.step;
  const parts = [];
  if (job.status === "queued") parts.push(`Queued${job.queuePosition ? `, position ${job.queuePosition}` : ""}`);
  else parts.push(`Step ${job.step} of ${job.totalSteps}`);
  if (job.etaSeconds != null) parts.push(`about ${Math.ceil(job.etaSeconds)} s left`);
  $("progress-label").textContent = parts.join(" · ");
}

// The picture forming while the job runs: its predicted image every few steps (an animation's current frame;
// variations side by side), replaced by the result when it arrives.
function showPreview(preview) {
  const image = $("preview");
  image.src = preview.image;
  image.alt = `Preview at step ${preview.step} of ${preview.steps}`;
  image.hidden = false;
}

function showResult(result) {
  $("result").hidden = false;
  const image = $("result-image");
  image.src = result.imageUrl;
  image.width = result.parameters.width;
  image.height = result.parameters.height;
  image.alt = `Generated image${result.tokenId ? ` for token #${result.tokenId}` : ""}: ${result.prompt}`;
  $("result-prompt").textContent = result.prompt;
  const meta = $("result-meta");
  meta.replaceChildren(
    `${result.parameters.width}×${result.parameters.height} · ${result.parameters.sampler} · ` +
      `${result.seconds.toFixed(1)} s`,
  );
  if (result.cached) {
    const badge = document.createElement("span");
    badge.className = "cached";
    badge.textContent = "cached";
    meta.append(" · ", badge);
  }
  $("result-download").href = result.imageUrl;
  $("result-download").download = result.imageUrl.split("/").pop();
  $("result-heading").focus();
}

// Runs a job the page started (submit() answers its 202), showing progress until done(job) takes it.
async function runJob(submit, done) {
  clearError();
  $("job-status").textContent = "";
  setBusy(true);
  try {
    const job = await submit();
    state.job = job;
    await follow(job, done);
  } catch (error) {
    showError(error);
  } finally {
    state.job = null;
    setBusy(false);
    showKey(); // what is left of its limits now
  }
}

// The weights picked above Generate: nothing for the service's own model without a LoRA.
function modelChoice() {
  const choice = {};
  if ($("model-pick").value) choice.model = $("model-pick").value;
  if ($("lora-pick").value) choice.loras = [{ id: $("lora-pick").value, weight: Number($("lora-weight").value) }];
  return choice;
}

async function generate() {
  const source = state.source;
  if (!source) return;
  $("result").hidden = true;
  $("derived-box").hidden = true;
  const choice = modelChoice();
  const tokenId = source.kind === "token" ? { tokenId: source.tokenId } : {};
  await runJob(
    // A token's own route renders it as the service does; other weights go through /jobs with its parameters.
    () => source.kind === "token" && !Object.keys(choice).length
      ? request("POST", `/tokens/${source.tokenId}/jobs`)
      : request("POST", "/jobs", { body: { parameters: source.params, ...tokenId, ...choice } }),
    (job) => {
      state.result = job.result;
      showResult(job.result);
      loadGallery();
    },
  );
}

// What the page offers under the image: each kind that declares an offer (GET /params' kinds), a button (and a
// picker, for a kind asked with an option chosen from one of the tables) that starts it from the parameters shown
// or from the image shown.
function buildOffers() {
  const row = $("offers");
  for (const offer of state.tables.kinds) {
    let picker = null;
    if (offer.pick) {
      picker = document.createElement("select");
      picker.id = `offer-${offer.kind}-${offer.pick}`;
      picker.replaceChildren(...state.tables[offer.pickTable].map((name, i) => new Option(name, i)));
      const label = document.createElement("label");
      label.htmlFor = picker.id;
      label.textContent = offer.pickLabel;
      row.append(label, " ", picker, " ");
    }
    const button = document.createElement("button");
    Object.assign(button, { type: "button", id: `offer-${offer.kind}`, textContent: offer.label });
    button.addEventListener("click", () => runOffer(offer, picker));
    row.append(button, " ");
  }
}

async function runOffer(offer, picker) {
  const body = { ...offer.body };
  let picked = "";
  if (picker) {
    body[offer.pick] = Number(picker.value);
    picked = picker.selectedOptions[0].textContent;
  }
  let submit;
  if (offer.from === "image") {
    const image = state.result; // the image shown: its key names it
    if (!image) return;
    submit = () => request("POST", `/images/${image.imageId}/${offer.path}`, { body });
  } else {
    const source = state.source;
    if (!source) return;
    submit = () => source.kind === "token"
      ? request("POST", `/tokens/${source.tokenId}/${offer.tokenPath}`, { body })
      : request("POST", offer.path, { body: { parameters: source.params, ...body } });
  }
  await runJob(submit, (job) => showDerived(offer.heading.replace("{pick}", picked), offer.note,
    // an animation's results are the MP4 and the same loop as an animated WebP; the video is the one shown
    offer.shows === "video" ? job.results.filter(isVideo) : job.results));
}

const isVideo = (result) => result.imageUrl.endsWith(".mp4");

// A stored file as the page shows it: a muted looping video for an MP4, an image for the rest.
function media(result, alt) {
  if (isVideo(result)) {
    const video = document.createElement("video");
    Object.assign(video, { src: result.imageUrl, muted: true, loop: true, autoplay: true, playsInline: true });
    video.setAttribute("aria-label", alt);
    return video;
  }
  const image = document.createElement("img");
  Object.assign(image, { src: result.imageUrl, alt, loading: "lazy" });
  return image;
}

function showDerived(heading, note, results) {
  $("derived-heading").textContent = heading;
  $("derived-note").textContent = note;
  $("derived-grid").replaceChildren(...results.map((result, i) => {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = result.imageUrl;
    link.append(media(result, `${heading} ${i + 1}: ${result.prompt}`));
    item.append(link);
    return item;
  }));
  $("derived-box").hidden = false;
  $("derived-heading").focus();
  loadGallery();
}

async function follow(job, done) {
  let last = job;
  if (job.status !== "succeeded") {
    $("preview").hidden = true;
    showProgress(job);
    for await (const event of events(job.eventsUrl)) {
      if (event.type === "preview") {
        showPreview(event.data);
        continue;
      }
      last = event.data;
      showProgress(last);
    }
    $("preview").hidden = true; // the result (or why there is none) replaces it
    // The stream can end early (a proxy, a restart): ask for the job's state once more.
    if (!["succeeded", "failed", "cancelled"].includes(last.status)) last = await request("GET", job.statusUrl);
  }
  if (last.status === "succeeded") {
    $("job-status").textContent = "Done.";
    done(last);
  } else if (last.status === "cancelled") {
    $("job-status").textContent = "Cancelled.";
  } else {
    throw new ApiError(last.error || "The generation failed.");
  }
}

async function cancel() {
  if (!state.job) return;
  try {
    await request("DELETE", state.job.statusUrl);
    $("job-status").textContent = "Cancelling…";
  } catch (error) {
    showError(error);
  }
}

// Gallery

async function loadGallery() {
  try {
    const page = await request("GET", `/images?limit=${GALLERY_PAGE}&offset=${state.galleryOffset}`);
    const list = $("gallery");
    list.replaceChildren(...page.images.map(galleryItem));
    $("gallery-empty").hidden = page.total > 0;
    const first = page.total ? state.galleryOffset + 1 : 0;
    $("gallery-page").textContent = `${first}–${state.galleryOffset + page.images.length} of ${page.total}`;
    $("gallery-prev").disabled = state.galleryOffset === 0;
    $("gallery-next").disabled = state.galleryOffset + GALLERY_PAGE >= page.total;
  } catch (error) {
    showError(error);
  }
}

function galleryItem(image) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  const thumb = media(image, image.prompt);
  const caption = document.createElement("span");
  caption.textContent = image.tokenId ? `Token #${image.tokenId}` : "By hand";
  button.append(thumb, caption);
  button.addEventListener("click", () => openDetails(image));
  item.append(button);
  return item;
}

function openDetails(image) {
  const video = isVideo(image);
  $("details-image").hidden = video;
  $("details-video").hidden = !video;
  if (video) {
    $("details-video").src = image.imageUrl;
    $("details-video").setAttribute("aria-label", image.prompt);
  } else {
    $("details-image").src = image.imageUrl;
    $("details-image").alt = image.prompt;
  }
  const rows = [
    ["Token", image.tokenId ? `#${image.tokenId}` : "—"],
    ["Prompt", image.prompt],
    ["Size", `${image.parameters.width}×${image.parameters.height}`],
    ["Sampler", image.parameters.sampler],
    ["Steps", String(image.parameters.steps)],
    ["CFG", String(image.parameters.cfg_scale)],
    ["Seed", String(image.parameters.seed)],
    ["Model", image.model],
    ["Seconds", String(image.seconds)],
    ["SHA-256", image.sha256],
  ];
  $("details-list").replaceChildren(...definitionRows(rows));
  $("details-download").href = image.imageUrl;
  $("details").showModal();
}

// Models: the picker, and uploads once the admin key is entered

async function loadModels() {
  const listing = await request("GET", "/models");
  const pick = (id, models, none) => {
    const current = $(id).value;
    $(id).replaceChildren(new Option(none, ""), ...models.map((m) => new Option(`${m.name} (${m.id})`, m.id)));
    $(id).value = models.some((m) => m.id === current) ? current : "";
  };
  const uploads = listing.models.filter((m) => !m.default);
  pick("model-pick", uploads.filter((m) => m.kind === "checkpoint"), `${listing.models[0].name} (default)`);
  pick("lora-pick", uploads.filter((m) => m.kind === "lora"), "none");
  $("models-card").hidden = !listing.uploadsEnabled;
}

async function upload(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) return;
  $("upload").disabled = true;
  $("upload-status").textContent = `Uploading ${file.name}…`;
  try {
    const model = await uploadModel(file, $("upload-kind").value, state.adminKey);
    await loadModels();
    $(model.kind === "lora" ? "lora-pick" : "model-pick").value = model.id;
    // Said last: once it shows, the pickers list the upload and have it chosen.
    $("upload-status").textContent = `Uploaded ${model.name}: a ${model.kind}, id ${model.id}.`;
  } catch (error) {
    $("upload-status").textContent = `Not uploaded: ${error.message}`;
  } finally {
    $("upload").disabled = false;
  }
}

// Wiring

async function main() {
  try {
    state.tables = await request("GET", "/params");
  } catch (error) {
    showError(error);
    return;
  }
  buildManualForm();
  buildOffers();
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadToken(`/tokens/${encodeURIComponent($("token-id").value)}`);
  });
  $("load-latest").addEventListener("click", () => loadToken("/tokens/latest"));
  $("manual-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearError();
    showParams({ kind: "manual", params: manualParams() });
  });
  $("generate").addEventListener("click", generate);
  $("cancel").addEventListener("click", cancel);
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey($("api-key").value);
    $("key-form").hidden = true;
    clearError();
    showKey();
  });
  $("admin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.adminKey = $("admin-key").value;
    $("admin-form").hidden = true;
    $("upload-form").hidden = false;
  });
  $("upload-form").addEventListener("submit", upload);
  setUpVerify();
  $("gallery-prev").addEventListener("click", () => {
    state.galleryOffset = Math.max(0, state.galleryOffset - GALLERY_PAGE);
    loadGallery();
  });
  $("gallery-next").addEventListener("click", () => {
    state.galleryOffset += GALLERY_PAGE;
    loadGallery();
  });
  await refreshHealth();
  await showKey();
  setInterval(refreshHealth, 5000);
  loadGallery();
  loadModels().catch(showError);
  document.body.dataset.ready = "true";
}

main();
