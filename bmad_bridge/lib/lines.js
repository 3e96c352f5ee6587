'use strict';
/**
 * Splits a stream of text chunks into lines, as they arrive, without a size cap on a line
 * (a 10,000-row result is one long line). A final line without a newline is still delivered.
 */
class LineSplitter {
  /** @param {(line: string, lineNumber: number) => void} onLine */
  constructor(onLine) {
    this.onLine = onLine;
    this.buffer = '';
    this.count = 0;
  }

  push(chunk) {
    let start = 0;
    let at = chunk.indexOf('\n');
    if (at === -1) {
      this.buffer += chunk;
      return;
    }
    let text = this.buffer + chunk.slice(0, at);
    this.buffer = '';
    for (;;) {
      this.count += 1;
      this.onLine(text.endsWith('\r') ? text.slice(0, -1) : text, this.count);
      start = at + 1;
      at = chunk.indexOf('\n', start);
      if (at === -1) break;
      text = chunk.slice(start, at);
    }
    this.buffer = chunk.slice(start);
  }

  end() {
    if (this.buffer !== '') {
      const rest = this.buffer;
      this.buffer = '';
      this.count += 1;
      this.onLine(rest, this.count);
    }
  }
}

module.exports = { LineSplitter };
