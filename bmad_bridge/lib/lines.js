'use strict';
const { constants } = require('node:buffer');

/**
 * The longest line kept: V8's longest string. A 10,000-row result is one long line, so the cap is
 * not lower; past it a line cannot be held at all (`+=` would throw RangeError out of the stream's
 * 'data' handler and end the process).
 */
const MAX_LINE_CHARS = constants.MAX_STRING_LENGTH;

/** How much of an over-long line is kept to say what it was (its id, for an answer). */
const PREFIX_CHARS = 300;

/**
 * Splits a stream of text chunks into lines, as they arrive. A final line without a newline is
 * still delivered. A line longer than `maxLineChars` is never held: its first characters are
 * kept, the rest is counted and dropped up to its newline, and `onOverflow(prefix, length,
 * lineNumber)` is called in its place; the next line is split normally.
 */
class LineSplitter {
  /**
   * @param {(line: string, lineNumber: number) => void} onLine
   * @param {{maxLineChars?: number, onOverflow?: (prefix: string, length: number, lineNumber: number) => void}} [options]
   */
  constructor(onLine, { maxLineChars = MAX_LINE_CHARS, onOverflow = () => {} } = {}) {
    this.onLine = onLine;
    this.onOverflow = onOverflow;
    this.maxLineChars = maxLineChars;
    this.buffer = '';
    this.count = 0;
    this.overflow = null; // {prefix, length} while dropping an over-long line
  }

  push(chunk) {
    let start = 0;
    for (;;) {
      const at = chunk.indexOf('\n', start);
      const piece = at === -1 ? chunk.slice(start) : chunk.slice(start, at);
      this._grow(piece);
      if (at === -1) return;
      this._finish();
      start = at + 1;
    }
  }

  end() {
    if (this.buffer !== '' || this.overflow) this._finish();
  }

  _grow(piece) {
    if (this.overflow) {
      const { prefix } = this.overflow;
      if (prefix.length < PREFIX_CHARS) this.overflow.prefix = prefix + piece.slice(0, PREFIX_CHARS - prefix.length);
      this.overflow.length += piece.length;
    } else if (this.buffer.length + piece.length > this.maxLineChars) {
      const text = this.buffer + piece.slice(0, PREFIX_CHARS);
      this.overflow = { prefix: text.slice(0, PREFIX_CHARS), length: this.buffer.length + piece.length };
      this.buffer = '';
    } else {
      this.buffer += piece;
    }
  }

  _finish() {
    this.count += 1;
    if (this.overflow) {
      const { prefix, length } = this.overflow;
      this.overflow = null;
      this.onOverflow(prefix, length, this.count);
      return;
    }
    const text = this.buffer;
    this.buffer = '';
    this.onLine(text.endsWith('\r') ? text.slice(0, -1) : text, this.count);
  }
}

module.exports = { LineSplitter, MAX_LINE_CHARS };
