// admin.js - the history page: totals and two hourly charts from /api/stats,
// the classifications from /api/history in pages (keyset paging on before_id,
// with a stack of the cursors seen so "Newer" can go back), a label filter,
// and a dialog with everything stored about one classification.
// nginx asks for the admin login before serving this page, and the browser
// sends the same credentials with these same-origin requests.

import {el, svg, formatBytes, formatMs, formatPercent, renderBars, getJSON} from '../shared.js';

const API = '../api';
const HOURS = 24;
const $ = (sel) => document.querySelector(sel);

// ?limit=N sets the page size (1..200, as the API allows); ?label=L a filter.
const params = new URLSearchParams(location.search);
const pageSize = clampInt(params.get('limit'), 1, 200, 25);

function clampInt(s, lo, hi, dflt) {
	const n = Number.parseInt(s, 10);
	return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : dflt;
}

// Why a request failed, said for the person at this page.
function explain(e) {
	switch (e.status) {
	case 0: return 'The server could not be reached. Check that seer is running, then press Refresh.';
	case 401: return 'Your admin login was not accepted. Reload the page to sign in again.';
	case 403: return 'The server refused: the history must be reached through nginx, which asks for the admin login.';
	case 404: return e.serverMessage || 'Not found.';
	default: return `The server answered with an error (HTTP ${e.status})${e.serverMessage ? `: ${e.serverMessage}` : ''}. Press Refresh to try again.`;
	}
}

/* ----------------------------------------------------------------- stats */

let lastStats = null;

async function loadStats() {
	const status = $('#stats-status');
	try {
		const s = await getJSON(`${API}/stats?hours=${HOURS}`);
		lastStats = s;
		status.textContent = '';
		renderTotals(s);
		renderCharts(s);
		fillLabels(s.labels || []);
	} catch (e) {
		status.textContent = explain(e);
	}
}

function renderTotals(s) {
	const n = (v) => (Number.isFinite(v) ? v.toLocaleString() : '–');
	$('#total-all').textContent = n(s.total);
	$('#total-ok').textContent = n(s.ok);
	$('#total-errors').textContent = n(s.errors);
	$('#total-cached').textContent = n(s.cached);
	// The mean over all requests, from the per-hour means weighted by count.
	let sum = 0;
	let count = 0;
	for (const h of s.hours || []) {
		if (h.count > 0 && Number.isFinite(h.avg_ms)) {
			sum += h.avg_ms * h.count;
			count += h.count;
		}
	}
	$('#total-latency').textContent = count ? formatMs(sum / count) : '–';
}

function fillLabels(labels) {
	const list = $('#label-list');
	list.replaceChildren(...labels.map((l) => el('option', {value: l.label, label: `${l.label} (${l.count})`})));
}

// One slot per hour of the window, oldest first, with the server's numbers
// where it has them and zeros elsewhere (hours without requests may be absent).
function hourSlots(s) {
	const byHour = new Map((s.hours || []).map((h) => [h.hour, h]));
	const nowHour = Math.floor(Date.now() / 3600000) * 3600;
	let last = nowHour;
	for (const h of byHour.keys()) last = Math.max(last, h);
	const first = last - (HOURS - 1) * 3600;
	const slots = [];
	for (let t = first; t <= last; t += 3600) {
		const h = byHour.get(t);
		slots.push({hour: t, count: h ? h.count : 0, errors: h ? h.errors || 0 : 0, avg: h ? h.avg_ms : NaN, max: h ? h.max_ms : NaN});
	}
	return slots;
}

const hourLabel = (t) => new Date(t * 1000).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});

// A round upper bound for an axis: 1, 2, 5 times a power of ten.
function niceMax(v) {
	if (!(v > 0)) return 1;
	const p = 10 ** Math.floor(Math.log10(v));
	for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
	return 10 * p;
}

// The frame both charts share: sized in real pixels from the container (so
// the text stays legible on a phone), a y axis with three ticks, and hour
// labels every few slots.
function chartFrame(box, slots, yMax, yFormat, label, integers) {
	const width = Math.max(240, Math.floor(box.clientWidth || 600));
	const height = 180;
	const m = {top: 10, right: 10, bottom: 26, left: 52};
	const plotW = width - m.left - m.right;
	const plotH = height - m.top - m.bottom;
	const root = svg('svg', {
		width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label, class: 'chart-svg',
	});
	const y = (v) => m.top + plotH - (v / yMax) * plotH;
	// Ticks at 0, the middle and the top; the middle only where it is a whole
	// number when the axis counts things.
	const ticks = [0, yMax / 2, yMax].filter((v) => !integers || Number.isInteger(v));
	for (const v of ticks) {
		const f = v / yMax;
		root.append(
			svg('line', {x1: m.left, x2: width - m.right, y1: y(v), y2: y(v), class: f === 0 ? 'axis' : 'grid'}),
			svg('text', {x: m.left - 6, y: y(v) + 4, class: 'tick', 'text-anchor': 'end'}, yFormat(v)));
	}
	const slotW = plotW / slots.length;
	const every = width < 420 ? 8 : width < 700 ? 6 : 3;
	slots.forEach((s, i) => {
		if ((slots.length - 1 - i) % every !== 0) return;
		// The last label ends at the plot's edge instead of running past it.
		const last = i === slots.length - 1;
		const x = last ? width - m.right : m.left + slotW * (i + 0.5);
		root.append(svg('text', {x, y: height - 8, class: 'tick', 'text-anchor': last ? 'end' : 'middle'}, hourLabel(s.hour)));
	});
	return {root, y, x: (i) => m.left + slotW * i, slotW, plotH, top: m.top};
}

function renderCountChart(slots) {
	const box = $('#chart-count');
	const peak = slots.reduce((a, s) => (s.count > a.count ? s : a), slots[0]);
	const total = slots.reduce((a, s) => a + s.count, 0);
	const label = total
		? `Classifications per hour over the last ${HOURS} hours: ${total} in all, most at ${hourLabel(peak.hour)} with ${peak.count}.`
		: `No classifications in the last ${HOURS} hours.`;
	const yMax = niceMax(peak.count);
	const f = chartFrame(box, slots, yMax, (v) => String(v), label, true);
	const gap = Math.min(3, f.slotW * 0.2);
	slots.forEach((s, i) => {
		if (!s.count) return;
		const ok = s.count - s.errors;
		const x = f.x(i) + gap / 2;
		const w = Math.max(1, f.slotW - gap);
		const g = svg('g', {class: 'bar-group'},
			svg('title', {}, `${hourLabel(s.hour)}: ${s.count} classification${s.count === 1 ? '' : 's'}, ${s.errors} failed`));
		if (ok > 0) g.append(svg('rect', {x, y: f.y(ok), width: w, height: f.y(0) - f.y(ok), class: 'bar-ok'}));
		if (s.errors > 0) g.append(svg('rect', {x, y: f.y(s.count), width: w, height: f.y(ok) - f.y(s.count), class: 'bar-err'}));
		f.root.append(g);
	});
	box.replaceChildren(f.root);
}

function renderLatencyChart(slots) {
	const box = $('#chart-latency');
	const seen = slots.filter((s) => s.count > 0 && Number.isFinite(s.avg));
	const top = seen.reduce((a, s) => Math.max(a, Number.isFinite(s.max) ? s.max : s.avg), 0);
	const label = seen.length
		? `Latency per hour: average between ${formatMs(Math.min(...seen.map((s) => s.avg)))} and ${formatMs(Math.max(...seen.map((s) => s.avg)))}, highest single request ${formatMs(top)}.`
		: `No latency to show for the last ${HOURS} hours.`;
	const f = chartFrame(box, slots, niceMax(top), (v) => formatMs(v), label, false);
	// One path per run of hours with data; an hour without requests breaks the line.
	const line = (key, cls) => {
		let d = '';
		let open = false;
		slots.forEach((s, i) => {
			const v = s.count > 0 ? s[key] : NaN;
			if (!Number.isFinite(v)) {
				open = false;
				return;
			}
			d += `${open ? 'L' : 'M'}${(f.x(i) + f.slotW / 2).toFixed(1)} ${f.y(v).toFixed(1)}`;
			open = true;
		});
		if (d) f.root.append(svg('path', {d, class: cls}));
	};
	line('max', 'line-max');
	line('avg', 'line-avg');
	slots.forEach((s, i) => {
		if (!(s.count > 0) || !Number.isFinite(s.avg)) return;
		const cx = f.x(i) + f.slotW / 2;
		f.root.append(svg('g', {},
			svg('title', {}, `${hourLabel(s.hour)}: average ${formatMs(s.avg)}, maximum ${formatMs(s.max)}`),
			svg('circle', {cx, cy: f.y(s.max), r: 3, class: 'dot-max'}),
			svg('circle', {cx, cy: f.y(s.avg), r: 3.5, class: 'dot-avg'})));
	});
	box.replaceChildren(f.root);
}

function renderCharts(s) {
	const slots = hourSlots(s);
	renderCountChart(slots);
	renderLatencyChart(slots);
}

// Redraw at the new width when the layout changes (rotation, window resize).
let resizeTimer = 0;
new ResizeObserver(() => {
	clearTimeout(resizeTimer);
	resizeTimer = setTimeout(() => lastStats && renderCharts(lastStats), 100);
}).observe($('.charts'));

/* --------------------------------------------------------------- history */

let cursor = null;     // before_id of the page shown (null: the newest)
const earlier = [];    // cursors of the pages before it, for "Newer"
let nextCursor = null; // the API's next_before_id for this page
let filterLabel = (params.get('label') || '').trim();

function historyUrl() {
	const q = new URLSearchParams({limit: String(pageSize)});
	if (cursor !== null) q.set('before_id', String(cursor));
	if (filterLabel) q.set('label', filterLabel);
	return `${API}/history?${q}`;
}

// "Nov 28, 23:40:12" in the reader's own locale and time zone.
const shortTime = (d) => d.toLocaleString([], {month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit'});

const isFailed = (row) => row.status !== 200 || !!row.error;

function thumbCell(row) {
	if (!row.has_thumb) return el('span', {class: 'thumb thumb-none', 'aria-hidden': 'true'});
	return el('img', {
		class: 'thumb', src: `${API}/history/${row.id}/thumb`, alt: '', width: 56, height: 56,
		loading: 'lazy', decoding: 'async',
	});
}

function statusCell(row) {
	if (!isFailed(row)) {
		return el('td', {'data-label': 'Status'},
			el('span', {class: 'pill pill-ok', text: 'OK'}),
			row.cached ? el('span', {class: 'badge', text: 'cached'}) : null);
	}
	const err = row.error || {};
	return el('td', {'data-label': 'Status'},
		el('span', {class: 'pill pill-failed', text: `Failed · ${row.status}`}),
		el('span', {class: 'row-error', text: err.message || err.code || ''}));
}

function renderRow(row) {
	const time = new Date(row.time);
	const top = row.top1;
	const details = el('button', {
		type: 'button', class: 'button button-quiet', 'aria-label': `Details of classification ${row.id}`,
		on: {click: (e) => {
			e.stopPropagation();
			openDetail(row.id, e.currentTarget);
		}},
	}, 'Details');
	const tr = el('tr', {class: isFailed(row) ? 'failed' : null, data: {id: row.id}},
		el('td', {class: 'cell-thumb', 'data-label': 'Image'}, thumbCell(row)),
		el('td', {'data-label': 'Time'},
			el('time', {datetime: row.time, title: row.time, text: Number.isNaN(time.getTime()) ? row.time : shortTime(time)})),
		el('td', {'data-label': 'Top-1', class: 'cell-top'}, top
			? [el('span', {class: 'top-label', text: top.label}), ' ', el('span', {class: 'top-prob', text: formatPercent(top.prob)})]
			: el('span', {class: 'muted', text: '—'})),
		el('td', {'data-label': 'File', class: 'cell-file', text: row.file || '(no name)'}),
		el('td', {'data-label': 'Size', class: 'num', text: formatBytes(row.bytes)}),
		el('td', {'data-label': 'Latency', class: 'num', text: row.timings_ms ? formatMs(row.timings_ms.total) : '—'}),
		statusCell(row),
		el('td', {class: 'cell-action'}, details));
	// The whole row opens the details for mouse users; keyboard users have the button.
	tr.addEventListener('click', () => openDetail(row.id, details));
	return tr;
}

async function loadHistory({focus = false} = {}) {
	const status = $('#history-status');
	const rows = $('#rows');
	status.textContent = 'Loading…';
	$('#older').disabled = true;
	$('#newer').disabled = true;
	let page;
	try {
		page = await getJSON(historyUrl());
	} catch (e) {
		status.textContent = explain(e);
		$('#newer').disabled = earlier.length === 0;
		return;
	}
	const items = Array.isArray(page.items) ? page.items : [];
	nextCursor = page.next_before_id ?? null;
	rows.replaceChildren(...items.map(renderRow));
	$('#older').disabled = nextCursor === null;
	$('#newer').disabled = earlier.length === 0;
	$('#page-info').textContent = `Page ${earlier.length + 1}`;
	const what = filterLabel ? ` with top-1 label “${filterLabel}”` : '';
	if (!items.length) {
		status.textContent = earlier.length
			? `No more classifications${what}.`
			: filterLabel ? `No classifications${what}.` : 'No classifications yet. Upload a photo on the main page and press Refresh.';
	} else {
		status.textContent = `Showing ${items.length} classification${items.length === 1 ? '' : 's'}${what}.`;
	}
	if (focus) $('#history-title').focus();
}

$('#older').addEventListener('click', () => {
	if (nextCursor === null) return;
	earlier.push(cursor);
	cursor = nextCursor;
	loadHistory({focus: true});
});
$('#newer').addEventListener('click', () => {
	if (!earlier.length) return;
	cursor = earlier.pop();
	loadHistory({focus: true});
});

function applyFilter(label) {
	filterLabel = label.trim();
	$('#label-filter').value = filterLabel;
	cursor = null;
	earlier.length = 0;
	const q = new URLSearchParams(location.search);
	if (filterLabel) q.set('label', filterLabel);
	else q.delete('label');
	const qs = q.toString();
	history.replaceState(null, '', `${location.pathname}${qs ? `?${qs}` : ''}`);
	loadHistory();
}
$('#filter').addEventListener('submit', (e) => {
	e.preventDefault();
	applyFilter($('#label-filter').value);
});
$('#clear-filter').addEventListener('click', () => applyFilter(''));
$('#refresh').addEventListener('click', () => {
	loadStats();
	loadHistory();
});

/* ---------------------------------------------------------------- detail */

const dialog = $('#detail');
let returnFocus = null;

function field(name, ...value) {
	return [el('dt', {text: name}), el('dd', {}, ...value)];
}

function renderDetail(row) {
	const t = row.timings_ms || {};
	const err = row.error || null;
	const time = new Date(row.time);
	const timing = ['decode', 'preprocess', 'inference', 'total']
		.filter((k) => Number.isFinite(t[k])).map((k) => `${k} ${formatMs(t[k])}`).join(' · ');
	const topk = Array.isArray(row.topk) ? row.topk : row.top1 ? [row.top1] : [];
	const thumb = row.has_thumb
		? el('img', {class: 'detail-thumb', src: `${API}/history/${row.id}/thumb`, alt: `The ${row.file || 'image'} as the network saw it`, width: 112, height: 112})
		: el('div', {class: 'detail-thumb thumb-none', 'aria-hidden': 'true'});
	const fields = el('dl', {class: 'fields'},
		field('ID', String(row.id)),
		field('Time', Number.isNaN(time.getTime()) ? row.time : `${time.toLocaleString()} (${row.time})`),
		field('File', row.file || '(no name)'),
		field('Client', row.client || '—'),
		field('Content type', row.content_type || '—'),
		field('Size', Number.isFinite(row.bytes) ? `${formatBytes(row.bytes)} (${row.bytes.toLocaleString()} bytes)` : '—'),
		field('Dimensions', row.width && row.height ? `${row.width} × ${row.height} px` : '—'),
		field('Status', isFailed(row) ? el('span', {class: 'pill pill-failed', text: `Failed · ${row.status}`}) : el('span', {class: 'pill pill-ok', text: `OK · ${row.status}`})),
		field('Error', err ? `${err.code || ''}${err.code && err.message ? ': ' : ''}${err.message || ''}` : 'none'),
		field('Cached', row.cached ? 'yes: the same bytes were classified before' : 'no'),
		field('Model', row.model || '—'),
		field('SHA-256', el('code', {class: 'hash', text: row.sha256 || '—'})),
		field('Timings', timing || '—'),
		field('Thumbnail', row.has_thumb ? 'stored' : 'none'));
	const classes = el('section', {class: 'detail-top', 'aria-label': 'Classes'},
		el('h3', {text: topk.length ? `Top ${topk.length} classes` : 'No classes'}),
		topk.length ? renderBars(topk) : el('p', {class: 'message-title', text: err ? (err.message || err.code) : 'This request has no classes stored.'}));
	// The facts beside the thumbnail on the left, the (up to 20) classes on the right.
	return [el('div', {class: 'detail-grid'}, el('div', {class: 'detail-facts'}, thumb, fields), classes)];
}

async function openDetail(id, opener) {
	returnFocus = opener || document.activeElement;
	const body = $('#detail-body');
	$('#detail-title').textContent = `Classification ${id}`;
	body.replaceChildren(el('p', {class: 'muted', text: 'Loading…'}));
	if (!dialog.open) dialog.showModal();
	$('#detail-close').focus();
	try {
		const row = await getJSON(`${API}/history/${encodeURIComponent(id)}`);
		if (dialog.open) body.replaceChildren(...renderDetail(row));
	} catch (e) {
		body.replaceChildren(el('p', {class: 'message-title', text: explain(e)}));
	}
}

$('#detail-close').addEventListener('click', () => dialog.close());
// A click on the backdrop (outside the dialog's box) closes it too.
dialog.addEventListener('click', (e) => {
	if (e.target !== dialog) return;
	const r = dialog.getBoundingClientRect();
	const inside = e.clientX >= r.left && e.clientX <= r.right && e.clientY >= r.top && e.clientY <= r.bottom;
	if (!inside) dialog.close();
});
dialog.addEventListener('close', () => {
	if (returnFocus && document.contains(returnFocus)) returnFocus.focus();
	returnFocus = null;
});

/* ----------------------------------------------------------------- start */

$('#label-filter').value = filterLabel;
loadStats();
loadHistory();
