// The collection page: start a collection job, follow its progress, fill the grid as images land.
import { ApiError, events, request } from "./api.js";
import { definitionRows } from "./dom.js";

const $ = (id) => document.getElementById(id);
const PAGE = 48;
const state = { job: null, shown: PAGE, lastRefresh: 0 };

function showError(error) {
  $("error").textContent = error instanceof Error ? error.message : String(error);
  $("error").hidden = false;
}

function showProgress(job) {
  const summary = job.summary || {};
  $("progress-box").hidden = false;
  $("progress").max = Math.max(1, job.totalSteps);
  $("progress").value = job.step;
  $("progress-label").textContent = job.totalSteps
    ? `Token ${job.step} of ${job.totalSteps}`
    : "Reading the chain…";
  const failed = Object.keys(summary.failed || {}).length;
  const pending = (summary.pending || []).length;
  $("stats").textContent = [
    job.etaSeconds != null ? `about ${Math.ceil(job.etaSeconds)} s left` : null,
    failed ? `${failed} failed` : null,
    pending ? `${pending} waiting for their randomness` : null,
  ].filter(Boolean).join(" · ");
}

async function refreshTokens(force = false) {
  if (!state.job || (!force && Date.now() - state.lastRefresh < 1000)) return;
  state.lastRefresh = Date.now();
  const page = await request("GET", `/collections/${state.job.jobId}/tokens?limit=${state.shown}`);
  const list = $("tokens");
  list.replaceChildren(...page.tokens.map(tokenItem));
  $("more").hidden = page.total <= state.shown;
}

function tokenItem(token) {
  const item = document.createElement("li");
  const figure = document.createElement("figure");
  const caption = document.createElement("figcaption");
  caption.textContent = `#${token.tokenId}`;
  if (token.imageUrl) {
    const image = document.createElement("img");
    image.src = token.imageUrl;
    image.alt = `AleaArt token #${token.tokenId}`;
    figure.append(image);
  } else {
    const waiting = document.createElement("span");
    waiting.textContent = "rendering…";
    figure.append(waiting);
  }
  figure.append(caption);
  item.append(figure);
  item.dataset.tokenId = token.tokenId;
  item.dataset.ready = token.imageUrl ? "true" : "false";
  return item;
}

function showDone(job) {
  const summary = job.summary;
  const rows = [["Root CID", summary.rootCid], ["Images", summary.imagesCid], ["Metadata", summary.metadataCid],
    ["Rendered", `${summary.rendered} of ${summary.tokens}`]];
  $("cids").replaceChildren(...definitionRows(rows));
  $("car").href = `/collections/${job.jobId}/collection.car`;
  $("done").hidden = false;
  $("done-heading").focus();
}

async function start(event) {
  event.preventDefault();
  $("error").hidden = true;
  $("done").hidden = true;
  const body = { from: Number($("from").value) };
  if ($("to").value) body.to = Number($("to").value);
  $("start").disabled = true;
  try {
    state.job = await request("POST", "/collections", { body });
    let last = state.job;
    for await (const message of events(state.job.eventsUrl)) {
      if (message.type === "preview") continue; // a collection shows its tokens as they land instead
      last = message.data;
      showProgress(last);
      await refreshTokens();
    }
    await refreshTokens(true);
    if (last.status === "succeeded") showDone(last);
    else throw new ApiError(last.error || `The collection ${last.status}.`);
  } catch (error) {
    showError(error);
  } finally {
    $("start").disabled = false;
  }
}

$("collection-form").addEventListener("submit", start);
$("more").addEventListener("click", () => {
  state.shown += PAGE;
  refreshTokens(true).catch(showError);
});
document.body.dataset.ready = "true";
