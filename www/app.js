// app.js - the upload page: pick, drop, paste or photograph images, check them
// in the browser (type by magic bytes, size), upload them to POST
// /api/classify with a progress bar, and show one card per image with its
// preview, state, result bars and timings, or a plain-words error.

import {el, formatBytes, formatMs, renderBars, parseJSON} from './shared.js';

// The server's defaults (conf/seerd.conf): max_body and max_images. A request
// over either is refused with 413 anyway; checking here saves the upload.
const MAX_BYTES = 20 * 1024 * 1024;
const MAX_IMAGES = 8;
// Room for each part's multipart headers when packing several images into one
// request under MAX_BYTES.
const PART_OVERHEAD = 1024;
const TOPK = 5;
const ENDPOINT = `api/classify?topk=${TOPK}`;
// No upload progress for this long: give up on the upload. Once the upload is
// complete, the answer should come well within the server's own request
// timeout (30 s) plus queue timeout (10 s).
const STALL_MS = 60000;
const ANSWER_MS = 60000;

const $ = (sel) => document.querySelector(sel);
const dropzone = $('#dropzone');
const fileInput = $('#file-input');
const cameraButton = $('#camera');
const cameraInput = $('#camera-input');
const cardList = $('#cards');
const resultsHead = $('#results-head');
const statusRegion = $('#status');

/* ------------------------------------------------------------ file checks */

// Read the first n bytes of a file (FileReader works on every browser that
// has Blob.slice, including older mobile Safari without Blob.arrayBuffer).
function readHead(file, n = 64) {
	return new Promise((resolve, reject) => {
		const reader = new FileReader();
		reader.onload = () => resolve(new Uint8Array(reader.result));
		reader.onerror = () => reject(reader.error);
		reader.readAsArrayBuffer(file.slice(0, n));
	});
}

function startsWith(bytes, sig, at = 0) {
	if (bytes.length < at + sig.length) return false;
	for (let i = 0; i < sig.length; i++) {
		const want = typeof sig === 'string' ? sig.charCodeAt(i) : sig[i];
		if (bytes[at + i] !== want) return false;
	}
	return true;
}

// Plain text: valid UTF-8 with no control characters but tab, newline, CR, form feed.
function looksLikeText(bytes) {
	if (bytes.length === 0) return false;
	for (const b of bytes) if (b < 0x09 || (b > 0x0d && b < 0x20) || b === 0x7f) return false;
	try {
		// fatal: throws on bytes that are not UTF-8; a multi-byte character cut
		// at the end of the sample is allowed (stream mode).
		new TextDecoder('utf-8', {fatal: true}).decode(bytes, {stream: true});
		return true;
	} catch {
		return false;
	}
}

// What the file really is, from its first bytes: {kind, name, preview}.
// kind 'jpeg' and 'png' are accepted; name is what a person calls the others.
function sniff(bytes) {
	if (startsWith(bytes, [0xff, 0xd8, 0xff])) return {kind: 'jpeg', name: 'JPEG', preview: true};
	if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return {kind: 'png', name: 'PNG', preview: true};
	if (startsWith(bytes, 'GIF87a') || startsWith(bytes, 'GIF89a')) return {kind: 'gif', name: 'GIF', preview: true};
	if (startsWith(bytes, 'RIFF') && startsWith(bytes, 'WEBP', 8)) return {kind: 'webp', name: 'WebP', preview: true};
	if (startsWith(bytes, 'BM')) return {kind: 'bmp', name: 'BMP', preview: true};
	if (startsWith(bytes, 'II*\0') || startsWith(bytes, 'MM\0*')) return {kind: 'tiff', name: 'TIFF', preview: false};
	if (startsWith(bytes, 'ftyp', 4)) {
		const brand = String.fromCharCode(...bytes.slice(8, 12));
		if (/^(heic|heix|hevc|hevx|heim|heis|mif1|msf1)$/.test(brand)) return {kind: 'heic', name: 'HEIC', preview: false};
		if (/^avi[fs]$/.test(brand)) return {kind: 'avif', name: 'AVIF', preview: true};
		return {kind: 'video', name: 'video', preview: false};
	}
	if (startsWith(bytes, [0, 0, 1, 0])) return {kind: 'ico', name: 'ICO', preview: true};
	if (startsWith(bytes, '%PDF')) return {kind: 'pdf', name: 'PDF', preview: false};
	if (startsWith(bytes, [0x50, 0x4b, 0x03, 0x04])) return {kind: 'zip', name: 'ZIP', preview: false};
	if (looksLikeText(bytes)) {
		const head = new TextDecoder().decode(bytes).toLowerCase();
		if (head.includes('<svg') || (head.includes('<?xml') && head.includes('svg'))) return {kind: 'svg', name: 'SVG', preview: false};
		return {kind: 'text', name: 'text', preview: false};
	}
	return {kind: 'unknown', name: '', preview: false};
}

// "an SVG", "an AVIF", "a GIF", "a HEIC": by how the word is said, not spelt.
const article = (word) => (/^(SVG|ICO|AVIF)$/.test(word) ? 'an' : 'a');

// Check one file before any upload. Resolves to {ok, sniffed, title, detail}.
async function checkFile(file) {
	if (file.size === 0) return {ok: false, sniffed: {kind: 'empty', preview: false}, title: 'This file is empty (0 bytes).', detail: 'Choose the photo again; if it came from another app, save it there first.'};
	let bytes;
	try {
		bytes = await readHead(file);
	} catch {
		return {ok: false, sniffed: {kind: 'unreadable', preview: false}, title: 'This file could not be read.', detail: 'It may have been moved or deleted. Choose it again.'};
	}
	const sniffed = sniff(bytes);
	if (sniffed.kind !== 'jpeg' && sniffed.kind !== 'png') {
		const claimed = /^image\/(jpeg|png)$/.test(file.type) ? ` (even though its name or type says ${file.type === 'image/png' ? 'PNG' : 'JPEG'})` : '';
		let title;
		if (sniffed.name) title = `This is ${article(sniffed.name)} ${sniffed.name} file${claimed}`;
		else if (file.type && !claimed) title = `This is not a JPEG or PNG file (its type is “${file.type}”)`;
		else title = `This is not a JPEG or PNG file${claimed}`;
		return {ok: false, sniffed, title: `${title}; seer reads JPEG and PNG photos — convert it or take a screenshot.`, detail: ''};
	}
	if (file.size > MAX_BYTES) {
		return {
			ok: false, sniffed,
			title: `This photo is ${formatBytes(file.size)}; the limit is ${formatBytes(MAX_BYTES)}.`,
			detail: 'Make it smaller (save it at a lower resolution or quality, or take a screenshot of it) and try again.',
		};
	}
	return {ok: true, sniffed};
}

/* ------------------------------------------------------------------ cards */

let nextCardId = 1;
const cards = new Map(); // id -> card

function createCard(file) {
	const id = nextCardId++;
	const name = file.name || 'pasted image';
	const card = {id, file, name, url: null, state: 'checking', removed: false, single: false};

	card.media = el('div', {class: 'card-media'}, el('span', {class: 'preview-placeholder', 'aria-hidden': 'true'}));
	card.meta = el('p', {class: 'card-meta', text: formatBytes(file.size)});
	card.progress = el('progress', {max: 100, value: 0, 'aria-label': `Upload of ${name}`});
	card.progressText = el('span', {class: 'progress-text', text: 'Waiting to upload…'});
	card.result = el('div', {class: 'card-result'});
	card.messageTitle = el('p', {class: 'message-title'});
	card.messageDetail = el('p', {class: 'message-detail'});
	card.serverSaid = el('p', {class: 'message-server'});
	card.retry = el('button', {type: 'button', class: 'button button-secondary retry', on: {click: () => retryCard(card)}}, 'Try again');
	const remove = el('button', {
		type: 'button', class: 'card-remove', 'aria-label': `Remove ${name}`, title: 'Remove',
		on: {click: () => removeCard(card, true)},
	}, el('span', {'aria-hidden': 'true', text: '×'}));

	card.node = el('li', {class: 'card', data: {state: 'checking', card: id}},
		card.media,
		el('div', {class: 'card-body'},
			el('div', {class: 'card-head'},
				el('div', {class: 'card-id'},
					el('h3', {class: 'card-title', title: name, text: name}),
					card.meta),
				remove),
			el('p', {class: 'card-checking', text: 'Checking…'}),
			el('div', {class: 'card-progress'}, card.progress, card.progressText),
			el('p', {class: 'card-working'},
				el('span', {class: 'spinner', 'aria-hidden': 'true'}),
				el('span', {text: 'Recognising…'})),
			card.result,
			el('div', {class: 'card-message'}, card.messageTitle, card.messageDetail, card.serverSaid, card.retry)));
	cards.set(id, card);
	return card;
}

function setPreview(card) {
	if (!card.sniffed || !card.sniffed.preview) return;
	card.url = URL.createObjectURL(card.file);
	const img = el('img', {class: 'preview', alt: `Preview of ${card.name}`, src: card.url, decoding: 'async'});
	// A file that passed the magic check but is damaged may not display: keep
	// the placeholder then.
	img.addEventListener('error', () => img.replaceWith(el('span', {class: 'preview-placeholder', 'aria-hidden': 'true'})));
	card.media.replaceChildren(img);
}

function setState(card, state) {
	card.state = state;
	card.node.dataset.state = state;
}

function setProgress(card, fraction) {
	const pct = Math.round(fraction * 100);
	card.progress.value = pct;
	card.progressText.textContent = `Uploading… ${pct}%`;
}

function showMessage(card, {title, detail = '', server = ''}) {
	card.messageTitle.textContent = title;
	card.messageDetail.textContent = detail;
	card.serverSaid.textContent = server ? `The server said: “${server}”` : '';
}

function showRejected(card, check) {
	setState(card, 'rejected');
	showMessage(card, {title: check.title, detail: check.detail});
	card.retry.hidden = true;
}

function showError(card, info) {
	if (card.removed) return;
	setState(card, 'error');
	showMessage(card, info);
	card.retry.hidden = !info.retry;
}

function showResult(card, r, warning) {
	if (card.removed) return;
	setState(card, 'done');
	const t = r.timings_ms || {};
	const parts = [];
	if (Number.isFinite(t.inference)) parts.push(`network ${formatMs(t.inference)}`);
	if (Number.isFinite(t.decode)) parts.push(`decode ${formatMs(t.decode)}`);
	if (Number.isFinite(t.preprocess)) parts.push(`preprocess ${formatMs(t.preprocess)}`);
	if (Number.isFinite(t.total)) parts.push(`server total ${formatMs(t.total)}`);
	if (Number.isFinite(card.roundTrip)) parts.push(`round trip ${formatMs(card.roundTrip)}`);
	const facts = [];
	if (r.width && r.height) facts.push(`${r.width} × ${r.height} px`);
	facts.push(formatBytes(r.bytes ?? card.file.size));
	card.meta.textContent = facts.join(' · ');
	const topk = Array.isArray(r.topk) ? r.topk : [];
	const nodes = [
		r.cached ? el('p', {class: 'cached-note'},
			el('span', {class: 'badge', text: 'cached'}),
			' Seen before: this answer comes from the history.') : null,
		renderBars(topk),
		el('p', {class: 'timings'}, el('span', {class: 'visually-hidden', text: 'Timings: '}), parts.join(' · ')),
		warning ? el('p', {class: 'notice notice-warning', text: warning}) : null,
	];
	card.result.replaceChildren(...nodes.filter(Boolean));
	card.messageTitle.textContent = '';
	card.messageDetail.textContent = '';
	card.serverSaid.textContent = '';
	card.retry.hidden = true;
}

function removeCard(card, moveFocus) {
	card.removed = true;
	if (card.url) URL.revokeObjectURL(card.url);
	card.url = null;
	let focusTarget = null;
	if (moveFocus) {
		const next = card.node.nextElementSibling || card.node.previousElementSibling;
		focusTarget = next ? next.querySelector('.card-remove') : dropzone;
	}
	card.node.remove();
	cards.delete(card.id);
	if (cards.size === 0) resultsHead.hidden = true;
	if (focusTarget) focusTarget.focus();
}

function retryCard(card) {
	card.single = true;
	setState(card, 'queued');
	setProgress(card, 0);
	card.progressText.textContent = 'Waiting to upload…';
	queue.push(card);
	pump();
}

/* ------------------------------------------------------------- announcing */

// The status line (a polite live region) says one short thing at a time: what
// was just added, and how each request ended. The details are on the cards.
function announce(text) {
	statusRegion.textContent = text;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

// After a request: the top class for a single photo, else a count.
function announceBatch(batch) {
	const live = batch.filter((c) => !c.removed);
	if (!live.length || live.some((c) => c.state === 'queued')) return;
	const ok = live.filter((c) => c.state === 'done');
	const failed = live.length - ok.length;
	if (live.length === 1) {
		const c = live[0];
		const bar = c.result.querySelector('.bar');
		if (ok.length && bar) announce(`${c.name}: most likely ${bar.querySelector('.bar-label').textContent}, ${bar.querySelector('.bar-pct').textContent}.`);
		else if (!ok.length) announce(`${c.name}: ${c.messageTitle.textContent}`);
		return;
	}
	const parts = [];
	if (ok.length) parts.push(`${plural(ok.length, 'photo')} classified.`);
	if (failed) parts.push(`${failed} failed; ${failed === 1 ? 'its card says' : 'their cards say'} why.`);
	announce(parts.join(' '));
}

/* ---------------------------------------------------------------- uploads */

const queue = [];
let inFlight = false;

// Take the next request's images off the queue: at most MAX_IMAGES, at most
// MAX_BYTES in all; a card marked single (a retry, or after a 413 split)
// goes alone.
function nextBatch() {
	const batch = [];
	let bytes = 0;
	while (queue.length) {
		const c = queue[0];
		if (c.removed) {
			queue.shift();
			continue;
		}
		const size = c.file.size + PART_OVERHEAD;
		if (batch.length && (c.single || batch.length >= MAX_IMAGES || bytes + size > MAX_BYTES)) break;
		batch.push(queue.shift());
		bytes += size;
		if (c.single) break;
	}
	return batch;
}

function pump() {
	if (inFlight) return;
	const batch = nextBatch();
	if (!batch.length) return;
	inFlight = true;
	send(batch, () => {
		inFlight = false;
		announceBatch(batch);
		pump();
	});
}

// The plain-words explanation of a failed request or part, and whether trying
// again can help.
function describeError(status, err) {
	const code = (err && err.code) || '';
	const server = (err && err.message) || '';
	switch (status) {
	case 400:
		return {title: 'The server could not make sense of this upload.', detail: 'Try again; if it keeps failing, reload the page first.', server, retry: true};
	case 401:
	case 403:
		return {title: `The server refused the upload (HTTP ${status}).`, detail: 'This page may be set up wrongly; tell the person who runs this server.', server, retry: false};
	case 404:
	case 405:
		return {title: `The recognition service was not found on this server (HTTP ${status}).`, detail: 'This server may be set up wrongly; tell the person who runs it.', server, retry: false};
	case 413:
		return {title: 'This upload is too large for the server.', detail: `seer takes photos up to ${formatBytes(MAX_BYTES)}. Make the photo smaller (a lower resolution or quality, or a screenshot) and try again.`, server, retry: false};
	case 415:
		return {title: 'This is not a JPEG or PNG image.', detail: 'seer reads JPEG and PNG photos — convert it or take a screenshot, then try again.', server, retry: false};
	case 422:
		if (code === 'too_many_pixels') return {title: 'This image has too many pixels for seer.', detail: 'Resize it to a smaller size (under 40 megapixels) and try again.', server, retry: false};
		return {title: 'This image could not be read: it seems damaged or incomplete.', detail: 'Open it in a photo app and save it again, or choose another copy of it.', server, retry: false};
	case 429:
		return {title: 'Too many uploads in a short time.', detail: 'Wait a few seconds, then press “Try again”.', server: '', retry: true};
	case 503:
		if (code === 'not_ready') return {title: 'seer is not ready yet.', detail: 'Its recognition workers are starting or have no model loaded. Try again in a minute; if it stays like this, tell the person who runs this server.', server, retry: true};
		if (code === 'overloaded') return {title: 'seer is busy right now.', detail: 'Your photo waited too long in the queue. Try again in a moment.', server: '', retry: true};
		return {title: 'The recognition service is not answering.', detail: 'Try again in a moment; if it keeps happening, tell the person who runs this server.', server, retry: true};
	default:
		if (status >= 500) return {title: `The server had a problem (HTTP ${status}).`, detail: 'Try again in a moment; if it keeps happening, tell the person who runs this server.', server, retry: true};
		return {title: `The server answered with an unexpected error (HTTP ${status}).`, detail: 'Try again; if it keeps happening, tell the person who runs this server.', server, retry: true};
	}
}

const NETWORK_DOWN = {
	title: 'Could not reach seer.',
	detail: 'Check your network connection (or whether the service is running), then press “Try again”.',
	retry: true,
};
const UPLOAD_STALLED = {title: 'The upload stalled.', detail: 'The connection stopped moving. Check it, then press “Try again”.', retry: true};
const ANSWER_TIMEOUT = {title: 'seer took too long to answer.', detail: 'It may be very busy. Press “Try again” in a moment.', retry: true};

// One request for the batch: multipart with one "file" part per image.
function send(batch, done) {
	const form = new FormData();
	for (const c of batch) form.append('file', c.file, c.name);
	const xhr = new XMLHttpRequest();
	let timer = 0;
	let failure = null; // set when we abort the request ourselves
	const started = performance.now();
	const arm = (ms, info) => {
		clearTimeout(timer);
		timer = setTimeout(() => {
			failure = info;
			xhr.abort();
		}, ms);
	};
	const finish = () => {
		clearTimeout(timer);
		done();
	};

	for (const c of batch) {
		setState(c, 'uploading');
		setProgress(c, 0);
	}
	xhr.upload.addEventListener('progress', (e) => {
		arm(STALL_MS, UPLOAD_STALLED);
		if (!e.lengthComputable) return;
		for (const c of batch) setProgress(c, e.loaded / e.total);
	});
	xhr.upload.addEventListener('load', () => {
		arm(ANSWER_MS, ANSWER_TIMEOUT);
		for (const c of batch) if (!c.removed) setState(c, 'classifying');
	});
	xhr.addEventListener('load', () => {
		const roundTrip = performance.now() - started;
		for (const c of batch) c.roundTrip = roundTrip;
		handleAnswer(batch, xhr.status, parseJSON(xhr.responseText));
		finish();
	});
	xhr.addEventListener('error', () => {
		const info = navigator.onLine === false
			? {...NETWORK_DOWN, title: 'You seem to be offline.'}
			: NETWORK_DOWN;
		for (const c of batch) showError(c, info);
		finish();
	});
	xhr.addEventListener('abort', () => {
		for (const c of batch) showError(c, failure || NETWORK_DOWN);
		finish();
	});

	xhr.open('POST', ENDPOINT);
	xhr.setRequestHeader('Accept', 'application/json');
	arm(STALL_MS, UPLOAD_STALLED);
	xhr.send(form);
}

const STORAGE_WARNING = 'Classified, but the server could not save this result in its history. ' +
	'Nothing is lost here; if it keeps happening, tell the person who runs this server.';

function handleAnswer(batch, status, body) {
	const results = body && Array.isArray(body.results) ? body.results : null;
	const err = body && body.error && typeof body.error === 'object' ? body.error : null;
	const storageFailed = status === 503 && err && err.code === 'storage_failed';

	// Several images refused as a whole (too large together, or one answer for
	// all that cannot say which image it concerns): send them one by one.
	if (batch.length > 1 && !results && [400, 413, 415, 422].includes(status)) {
		for (const c of batch.reverse()) {
			c.single = true;
			setState(c, 'queued');
			queue.unshift(c);
		}
		return;
	}

	if (results && results.length === batch.length) {
		batch.forEach((c, i) => {
			const r = results[i];
			if (r && Array.isArray(r.topk)) showResult(c, r, storageFailed ? STORAGE_WARNING : '');
			else if (r && r.error) showError(c, describeError(r.status || status, r.error));
			else showError(c, describeError(status, err));
		});
		return;
	}
	// A single image sent raw answers the result itself.
	if (status >= 200 && status < 300 && body && Array.isArray(body.topk) && batch.length === 1) {
		showResult(batch[0], body, '');
		return;
	}
	if (status >= 200 && status < 300) {
		for (const c of batch) showError(c, {title: 'The server sent an answer this page does not understand.', detail: 'Reload the page and try again.', retry: true});
		return;
	}
	const info = describeError(status, err);
	for (const c of batch) showError(c, info);
}

/* ------------------------------------------------------- adding new files */

async function addFiles(fileList, how) {
	const files = Array.from(fileList || []);
	if (!files.length) {
		if (how === 'drop') announce('Nothing to upload there: drop image files (JPEG or PNG).');
		return;
	}
	const added = files.map((f) => createCard(f));
	// One selection keeps its order; the newest selection goes on top.
	cardList.prepend(...added.map((c) => c.node));
	resultsHead.hidden = false;
	const checks = await Promise.all(added.map(async (card) => {
		const check = await checkFile(card.file);
		card.sniffed = check.sniffed;
		if (card.removed) return null;
		setPreview(card);
		if (!check.ok) {
			showRejected(card, check);
			return null;
		}
		const kind = card.sniffed.name;
		card.meta.textContent = `${kind} · ${formatBytes(card.file.size)}`;
		setState(card, 'queued');
		return card;
	}));
	const accepted = checks.filter(Boolean);
	const refused = added.length - accepted.length;
	const parts = [];
	if (accepted.length) parts.push(accepted.length === 1 ? `Uploading ${accepted[0].name}…` : `Uploading ${accepted.length} photos…`);
	if (refused === 1 && added.length === 1) parts.push(`${added[0].name}: ${added[0].messageTitle.textContent}`);
	else if (refused) parts.push(`${plural(refused, 'file')} cannot be used; ${refused === 1 ? 'its card says' : 'their cards say'} why.`);
	announce(parts.join(' '));
	if (!accepted.length) return;
	queue.push(...accepted);
	pump();
}

/* ----------------------------------------------------------------- wiring */

function openPicker(input) {
	// showPicker() is the explicit API; click() is the fallback for browsers
	// without it. Both need the user's click or key press that got us here.
	try {
		if (typeof input.showPicker === 'function') {
			input.showPicker();
			return;
		}
	} catch {
		// falls through to click()
	}
	input.click();
}

dropzone.addEventListener('click', () => openPicker(fileInput));
cameraButton.addEventListener('click', () => openPicker(cameraInput));
for (const input of [fileInput, cameraInput]) {
	input.addEventListener('change', () => {
		addFiles(input.files, 'picker');
		input.value = ''; // so that choosing the same file again is a change too
	});
}

$('#clear').addEventListener('click', () => {
	for (const card of [...cards.values()]) removeCard(card, false);
	announce('Cleared all results.');
	dropzone.focus();
});

// Drag and drop: anywhere on the page counts, so a near miss does not make
// the browser navigate away to the dropped file.
let dragDepth = 0;
const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files');
function setDragging(on) {
	document.body.classList.toggle('dragging', on);
	$('#drop-overlay').hidden = !on;
}
window.addEventListener('dragenter', (e) => {
	if (!hasFiles(e)) return;
	e.preventDefault();
	dragDepth++;
	setDragging(true);
});
window.addEventListener('dragover', (e) => {
	if (!hasFiles(e)) return;
	e.preventDefault();
	e.dataTransfer.dropEffect = 'copy';
});
window.addEventListener('dragleave', () => {
	dragDepth = Math.max(0, dragDepth - 1);
	if (dragDepth === 0) setDragging(false);
});
window.addEventListener('drop', (e) => {
	e.preventDefault();
	dragDepth = 0;
	setDragging(false);
	addFiles(e.dataTransfer ? e.dataTransfer.files : [], 'drop');
});

// Paste: an image copied from another app or a screenshot.
document.addEventListener('paste', (e) => {
	const data = e.clipboardData;
	if (!data) return;
	let files = Array.from(data.files || []);
	if (!files.length && data.items) {
		files = Array.from(data.items).filter((i) => i.kind === 'file').map((i) => i.getAsFile()).filter(Boolean);
	}
	if (!files.length) return;
	e.preventDefault();
	addFiles(files, 'paste');
});

// Phones and tablets get the camera button; drag and paste hints are for
// mouse-and-keyboard devices.
const touch = navigator.maxTouchPoints > 0 || window.matchMedia('(pointer: coarse)').matches;
document.documentElement.classList.toggle('touch', touch);
cameraButton.hidden = !touch;

// Tell the user early when the service cannot classify yet, and clear the
// notice when it can.
async function watchReadiness() {
	const notice = el('p', {class: 'notice notice-warning', id: 'ready-notice', hidden: true});
	statusRegion.before(notice);
	for (;;) {
		let ready = true;
		let detail = '';
		try {
			const res = await fetch('api/ready', {headers: {Accept: 'application/json'}});
			// Read the body in every case, so the request is really over.
			const body = parseJSON(await res.text());
			if (res.status === 503) {
				ready = false;
				detail = body && body.error && body.error.message ? ` (${body.error.message})` : '';
			}
		} catch {
			// An unreachable server shows up on the first upload, with its own message.
		}
		notice.hidden = ready;
		if (ready) return;
		notice.textContent = `seer is not ready to classify yet${detail}. This notice goes away as soon as it is.`;
		await new Promise((r) => setTimeout(r, 5000));
	}
}
watchReadiness();
