// shared.js - small helpers used by both the upload page and the admin page:
// building DOM nodes without innerHTML (every string from a user or the server
// goes in as text, never as markup), number formatting, the probability bars,
// and reading the API's JSON error bodies.

const SVG_NS = 'http://www.w3.org/2000/svg';

function addChildren(node, children) {
	for (const c of children.flat()) {
		if (c === null || c === undefined || c === false) continue;
		node.append(c instanceof Node ? c : document.createTextNode(String(c)));
	}
	return node;
}

// el('p', {class: 'x', text: 'hi', data: {id: 3}, on: {click: f}, hidden: true}, child, ...)
// Other keys become attributes. There is deliberately no way to pass a style
// attribute: the page's CSP blocks them; callers set element.style instead.
export function el(tag, props = {}, ...children) {
	const node = document.createElement(tag);
	applyProps(node, props);
	return addChildren(node, children);
}

// The same for SVG elements (charts, icons).
export function svg(tag, props = {}, ...children) {
	const node = document.createElementNS(SVG_NS, tag);
	applyProps(node, props);
	return addChildren(node, children);
}

function applyProps(node, props) {
	for (const [k, v] of Object.entries(props)) {
		if (v === null || v === undefined || v === false) continue;
		if (k === 'class') node.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
		else if (k === 'text') node.textContent = v;
		else if (k === 'data') for (const [dk, dv] of Object.entries(v)) node.dataset[dk] = dv;
		else if (k === 'on') for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
		else if (k === 'style') throw new Error('el(): set element.style, not a style attribute (CSP)');
		else node.setAttribute(k, v === true ? '' : String(v));
	}
}

// 1536 -> "1.5 KiB"; sizes in the binary units the server's limits use.
export function formatBytes(n) {
	if (!Number.isFinite(n)) return '?';
	if (n < 1024) return `${n} ${n === 1 ? 'byte' : 'bytes'}`;
	const units = ['KiB', 'MiB', 'GiB'];
	let v = n / 1024;
	let i = 0;
	while (v >= 1024 && i < units.length - 1) {
		v /= 1024;
		i++;
	}
	return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

// A probability as a percentage with enough digits to tell small ones apart:
// 0.8123 -> "81.2%", 0.00137 -> "0.14%", 0.00001 -> "<0.01%".
export function formatPercent(p) {
	const pct = p * 100;
	if (pct >= 1) return `${pct.toFixed(1)}%`;
	if (pct >= 0.01) return `${pct.toFixed(2)}%`;
	if (pct > 0) return '<0.01%';
	return '0%';
}

// Milliseconds as a person reads them: "0.3 ms", "24.6 ms", "1.24 s".
export function formatMs(ms) {
	if (!Number.isFinite(ms)) return '–';
	if (ms === 0) return '0 ms';
	if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
	if (ms >= 100) return `${ms.toFixed(0)} ms`;
	return `${ms.toFixed(1)} ms`;
}

// The top-K classes as a list of labelled bars. The fill width is set through
// element.style (allowed by the CSP, unlike a style attribute). The raw index
// and probability stay on each item as data attributes.
export function renderBars(topk) {
	const list = el('ol', {class: 'bars'});
	for (const t of topk) {
		const fill = el('span', {class: 'bar-fill'});
		fill.style.width = `${Math.max(0, Math.min(1, t.prob)) * 100}%`;
		list.append(
			el('li', {class: 'bar', data: {index: t.index, prob: t.prob}},
				el('span', {class: 'bar-label', text: t.label}),
				el('span', {class: 'bar-pct', text: formatPercent(t.prob)}),
				el('span', {class: 'bar-track', 'aria-hidden': 'true'}, fill)));
	}
	return list;
}

// An API answer that was not a success: the HTTP status, the server's code
// and message when the body was the documented {"error": {...}} object.
export class ApiError extends Error {
	constructor(status, code, message, body) {
		super(message || `HTTP ${status}`);
		this.status = status;
		this.code = code || '';
		this.serverMessage = message || '';
		this.body = body;
	}
}

// Parse a response body that should be JSON; null when it is not.
export function parseJSON(text) {
	if (!text) return null;
	try {
		return JSON.parse(text);
	} catch {
		return null;
	}
}

// GET a JSON document; resolves with the parsed body or throws ApiError
// (status 0 when the server could not be reached at all).
export async function getJSON(url) {
	let res;
	try {
		res = await fetch(url, {headers: {Accept: 'application/json'}, credentials: 'same-origin'});
	} catch {
		throw new ApiError(0, 'network', 'The server could not be reached.');
	}
	const body = parseJSON(await res.text());
	if (!res.ok) {
		const err = body && body.error ? body.error : {};
		throw new ApiError(res.status, err.code, err.message, body);
	}
	if (body === null) throw new ApiError(res.status, 'bad_json', 'The server sent an answer that is not JSON.');
	return body;
}
