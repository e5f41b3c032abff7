// An xterm.js terminal for the watch and replay views. It renders with WebGL (a canvas: the
// DOM renderer injects <style> elements, which the strict Content-Security-Policy blocks)
// and falls back to the DOM renderer, which app.css styles well enough without them.

import { Terminal } from '/vendor/xterm.mjs';

let WebglAddon = null;
try {
  ({ WebglAddon } = await import('/vendor/addon-webgl.mjs'));
} catch {
  WebglAddon = null;
}

/** The terminals on the page, read by the tests and the latency benchmark. */
const live = new Set();
window.keepwatchConsole = {
  /** Every line of every terminal on the page (scrollback included), as plain text. */
  terminalText() {
    const out = [];
    for (const t of live) {
      const b = t.buffer.active;
      for (let i = 0; i < b.length; i++) out.push(b.getLine(i)?.translateToString(true) ?? '');
    }
    return out.join('\n');
  },
  renderer: 'none',
};

export function createTerminal(parent, { cols = 80, rows = 24 } = {}) {
  const term = new Terminal({
    cols,
    rows,
    disableStdin: true,
    convertEol: false,
    scrollback: 2000,
    cursorBlink: false,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
    fontSize: 14,
    theme: { background: '#10141a', foreground: '#d8dee9' },
  });
  term.open(parent);
  if (WebglAddon) {
    try {
      const gl = new WebglAddon();
      gl.onContextLoss(() => gl.dispose());
      term.loadAddon(gl);
      window.keepwatchConsole.renderer = 'webgl';
    } catch {
      parent.classList.add('dom-renderer');
      window.keepwatchConsole.renderer = 'dom';
    }
  } else {
    parent.classList.add('dom-renderer');
    window.keepwatchConsole.renderer = 'dom';
  }
  live.add(term);
  const dispose = term.dispose.bind(term);
  term.dispose = () => {
    live.delete(term);
    dispose();
  };
  return term;
}

/** Resolves once xterm has parsed everything written so far. */
export function flushed(term) {
  return new Promise((resolve) => term.write('', resolve));
}
