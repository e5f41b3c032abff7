// The replay player: an xterm.js terminal driven from /api/v1/sessions/{id}/replay windows.
// A seek fetches the keyframe at or before the target time plus the events after it
// (`from_us`/`until_us`), resets the terminal, writes the keyframe and then the events up to
// the target, so no seek replays from the start. Playback writes the window's events as the
// clock passes them, skipping idle gaps longer than the limit, and fetches the next window
// when it runs out. A window the server cut into pages (a response holds at most so many
// events and bytes) says where the next page starts (`next`, a cursor); playback fetches it
// when it reaches the end of the page and replaces the page's events with the next ones, so
// the browser holds one page at a time. Going back before the page then seeks again.

import { get, query } from './api.js';
import { createTerminal, flushed } from './term.js';

/** Session time covered by one replay request while playing, and by one for a seek (small,
 * so a seek moves little data; playback then fetches the next window as it goes). */
const PLAY_WINDOW_US = 120e6;
const SEEK_WINDOW_US = 15e6;

export class Player {
  constructor(parent, sessionId, { channel = '', durationUs = 0, onChange = () => {} } = {}) {
    this.id = sessionId;
    this.channel = channel;
    this.duration = durationUs;
    this.onChange = onChange;
    this.term = createTerminal(parent);
    this.pos = 0;
    this.playing = false;
    this.speed = 1;
    this.skipIdle = true;
    this.idleLimit = 2e6;
    this.win = null; // {from, until, kfAt, cols, rows, keyframe, events, idx}
    this.loading = null;
    this.lastSeekMs = null;
    this.lastFetchMs = null;
    this.seq = 0;
    this.raf = null;
    this.lastTick = 0;
    this.disposed = false;
  }

  async fetchWindow(fromUs, first = false, windowUs = PLAY_WINDOW_US) {
    const from = Math.max(0, Math.floor(fromUs));
    const until = Math.ceil(from + windowUs);
    // Every window is a look the server audits (once per viewer, address and session every
    // few minutes); nothing sent here decides that.
    const r = await get(`/sessions/${encodeURIComponent(this.id)}/replay${query({
      channel: this.channel, from_us: first ? 0 : from, until_us: until,
    })}`);
    if (r.duration_us && r.duration_us > this.duration) this.duration = r.duration_us;
    if (r.channel !== undefined && r.channel !== null) this.channel = r.channel;
    const events = (r.events || []).slice().sort((a, b) => a[0] - b[0]);
    const kfAt = r.keyframe ? r.keyframe.at_us : 0;
    const w = {
      from, windowUntil: until, kfAt, cols: r.cols, rows: r.rows,
      keyframe: r.keyframe ? r.keyframe.screen : '', events, idx: 0,
      redrawable: true, pageFrom: kfAt,
    };
    this.setPage(w, r);
    return w;
  }

  /** Where the window's current page ends, and the cursor of the next one. */
  setPage(w, r) {
    w.next = r.next || null;
    w.until = w.next ? r.next_from_us : Math.min(w.windowUntil, this.duration || w.windowUntil);
  }

  /** Fetches the next page of the current window in place of the one played. */
  async nextPage() {
    const w = this.win;
    const seq = this.seq;
    this.loading = get(`/sessions/${encodeURIComponent(this.id)}/replay${query({
      channel: this.channel, cursor: w.next, until_us: w.windowUntil,
    })}`);
    let r;
    try {
      r = await this.loading;
    } catch (e) {
      // A cursor from before a server restart: seek to where the page ended instead.
      if (seq === this.seq && !this.disposed) {
        this.loading = null;
        await this.seek(w.until, PLAY_WINDOW_US);
      }
      return;
    } finally {
      this.loading = null;
    }
    if (seq !== this.seq || this.disposed || this.win !== w) return;
    this.pages = (this.pages || 0) + 1;
    w.events = (r.events || []).slice().sort((a, b) => a[0] - b[0]);
    w.idx = 0;
    w.redrawable = false;
    w.pageFrom = w.events.length ? w.events[0][0] : w.until;
    this.setPage(w, r);
  }

  /** The first window (audited as the replay), drawn at 0. */
  async open() {
    this.win = await this.fetchWindow(0, true);
    await this.redraw(0);
  }

  /** Whether the loaded page can play forward to `t` from where it is. */
  covers(t) {
    const w = this.win;
    return w && t >= w.pageFrom && (t <= w.until || (!w.next && w.until >= this.duration));
  }

  /** Whether `t` can be drawn from the window's keyframe (the page played first). */
  redrawable(t) {
    return this.covers(t) && this.win.redrawable && t >= this.win.kfAt;
  }

  /** Resets the terminal to the window's keyframe and writes events up to `t`. */
  redraw(t) {
    const w = this.win;
    this.term.reset();
    if (w.cols && w.rows && (w.cols !== this.term.cols || w.rows !== this.term.rows)) this.term.resize(w.cols, w.rows);
    let out = w.keyframe || '';
    w.idx = 0;
    while (w.idx < w.events.length && w.events[w.idx][0] < w.kfAt) w.idx++;
    out += this.take(t);
    this.pos = t;
    return new Promise((resolve) => this.term.write(out, resolve));
  }

  /** The output of events up to `t` (inclusive) from the window, applying resizes in order. */
  take(t) {
    const w = this.win;
    let out = '';
    while (w.idx < w.events.length && w.events[w.idx][0] <= t) {
      const [, kind, data] = w.events[w.idx++];
      if (kind === 'o') out += data;
      else if (kind === 'r') {
        const m = /^(\d+)x(\d+)$/.exec(data || '');
        if (m) {
          if (out) this.term.write(out);
          out = '';
          if (Number(m[1]) !== this.term.cols || Number(m[2]) !== this.term.rows) this.term.resize(Number(m[1]), Number(m[2]));
        }
      }
    }
    return out;
  }

  /** Seeks to `t` µs; resolves with the milliseconds until the terminal showed it. */
  async seek(t, windowUs = SEEK_WINDOW_US) {
    const started = performance.now();
    const seq = ++this.seq;
    t = Math.max(0, Math.min(t, this.duration || t));
    if (this.covers(t) && t >= this.pos) {
      const out = this.take(t);
      this.pos = t;
      if (out) this.term.write(out);
    } else if (this.redrawable(t)) {
      await this.redraw(t);
    } else {
      this.loading = this.fetchWindow(t, false, windowUs);
      let w;
      try {
        w = await this.loading;
      } finally {
        this.loading = null;
      }
      this.lastFetchMs = performance.now() - started;
      if (seq !== this.seq || this.disposed) return null;
      this.win = w;
      await this.redraw(t);
    }
    await flushed(this.term);
    if (seq !== this.seq) return null;
    this.lastSeekMs = performance.now() - started;
    this.onChange();
    return this.lastSeekMs;
  }

  nextEventAt() {
    const w = this.win;
    if (!w) return null;
    return w.idx < w.events.length ? w.events[w.idx][0] : null;
  }

  play() {
    if (this.playing) return;
    if (this.duration && this.pos >= this.duration) this.seek(0);
    this.playing = true;
    this.lastTick = performance.now();
    const tick = (now) => {
      if (!this.playing || this.disposed) return;
      const dt = now - this.lastTick;
      this.lastTick = now;
      if (!this.loading) this.advance(dt);
      this.raf = requestAnimationFrame(tick);
    };
    this.raf = requestAnimationFrame(tick);
    this.onChange();
  }

  pause() {
    this.playing = false;
    cancelAnimationFrame(this.raf);
    this.onChange();
  }

  toggle() {
    if (this.playing) this.pause(); else this.play();
  }

  advance(dtMs) {
    let target = this.pos + dtMs * 1000 * this.speed;
    const next = this.nextEventAt();
    if (this.skipIdle && next !== null && next - this.pos > this.idleLimit) {
      target = Math.max(target, next - this.idleLimit);
    }
    if (this.duration && target >= this.duration) {
      target = this.duration;
    }
    const w = this.win;
    if (w && w.next && target >= w.until) {
      // The end of this page: play up to it, then fetch the next page of the window.
      target = w.until;
      const out = this.take(target);
      this.pos = target;
      if (out) this.term.write(out);
      this.onChange();
      this.nextPage();
      return;
    }
    if (w && target > w.until && w.until < this.duration) {
      // Out of this window: the next one starts at the keyframe before `target`.
      this.seek(target, PLAY_WINDOW_US);
      return;
    }
    const out = this.take(target);
    this.pos = target;
    if (out) this.term.write(out);
    if (this.duration && this.pos >= this.duration) this.pause();
    this.onChange();
  }

  dispose() {
    this.disposed = true;
    this.pause();
    this.term.dispose();
  }
}
