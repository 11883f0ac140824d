/**
 * Line splitting over raw bytes for the shipper: audit records are never decoded, so non-UTF-8
 * bytes reach the stream exactly as the WAF wrote them. Pure: no I/O, no clock.
 *
 * A line ends at LF; one CR before it is part of the terminator. Only complete lines come out:
 * a partial last line waits for its newline (or, for a Concurrent-log file holding one record,
 * for {@link LineSplitter.flushPartial}). Every byte fed is accounted for by an offset in the
 * sink's calls, so a checkpoint can always move past blank and skipped lines too.
 */

/** Receives what {@link LineSplitter.feed} finds, in file order. */
export interface LineSink {
  /**
   * A complete, non-blank record of at most `maxRecordBytes` bytes (terminator excluded).
   * `end` is the file offset just past its terminator. `line` may share memory with the chunk
   * fed: keep it, do not modify it.
   */
  record(line: Buffer, end: number): void;
  /** A blank line (whitespace only) ending at `end`: nothing to ship, but the offset moves. */
  blank(end: number): void;
  /**
   * A line longer than `maxRecordBytes`, from `start` to `end` (terminator included), `bytes`
   * long without its terminator; `head` holds its first bytes (up to {@link OVERSIZE_HEAD}) so
   * the warning can name the transaction. The line itself was never held in memory.
   */
  oversize(start: number, end: number, bytes: number, head: Buffer): void;
}

/** How much of an oversized line is kept to describe it. */
export const OVERSIZE_HEAD = 512;

const LF = 0x0a;
const CR = 0x0d;

function isBlank(line: Buffer): boolean {
  for (let i = 0; i < line.length; i++) {
    const b = line[i] as number;
    if (b !== 0x20 && b !== 0x09 && b !== LF && b !== 0x0b && b !== 0x0c && b !== CR) return false;
  }
  return true;
}

/**
 * Splits one file's bytes into lines, chunk by chunk, holding at most `maxRecordBytes + 1`
 * bytes of an unfinished line.
 *
 * @example
 * const s = new LineSplitter(1 << 20, 0);
 * s.feed(Buffer.from('{"a":1}\n{"b"'), sink); // sink.record({"a":1}, 8)
 * s.feed(Buffer.from(':2}\n'), sink);          // sink.record({"b":2}, 16)
 */
export class LineSplitter {
  /** Pieces of the unfinished line (none while skipping an oversized one). */
  #parts: Buffer[] = [];
  #partLen = 0;
  /** File offset where the unfinished line starts. */
  #lineStart: number;
  /** File offset of the next byte to be fed. */
  #pos: number;
  /** Inside a line already known to be too long: its bytes are counted, not kept. */
  #skipping = false;
  #skipLen = 0;
  #skipHead: Buffer = Buffer.alloc(0);
  /** Last byte skipped (a CR before the LF is terminator, not record). */
  #skipLast = -1;

  /**
   * @param maxRecordBytes longest record shipped (terminator excluded); longer lines are reported
   *   to `oversize` instead
   * @param offset file offset of the first byte that will be fed
   */
  constructor(
    readonly maxRecordBytes: number,
    offset: number,
  ) {
    this.#lineStart = offset;
    this.#pos = offset;
  }

  /** File offset of the next byte to feed. */
  get position(): number {
    return this.#pos;
  }

  /** Bytes fed that belong to a line not finished yet (counted, even when not kept). */
  get pending(): number {
    return this.#pos - this.#lineStart;
  }

  /** File offset where the unfinished line starts (every line before it was handed out). */
  get lineStart(): number {
    return this.#lineStart;
  }

  /** Bytes of the unfinished line held in memory (an oversized one is counted, not held). */
  get held(): number {
    return this.#skipping ? this.#skipHead.length : this.#partLen;
  }

  /** Feeds the next bytes of the file; complete lines go to `sink` at once. */
  feed(chunk: Buffer, sink: LineSink): void {
    let start = 0;
    const base = this.#pos;
    this.#pos += chunk.length;
    while (start < chunk.length) {
      const nl = chunk.indexOf(LF, start);
      if (nl === -1) {
        this.#hold(chunk.subarray(start));
        return;
      }
      const end = base + nl + 1;
      if (this.#skipping) {
        this.#skip(chunk.subarray(start, nl));
        this.#endOversize(end, sink);
      } else if (this.#partLen === 0) {
        this.#emit(chunk.subarray(start, nl), end, sink);
      } else {
        const piece = chunk.subarray(start, nl);
        if (this.#partLen + piece.length > this.maxRecordBytes + 1) {
          this.#startSkipping();
          this.#skip(piece);
          this.#endOversize(end, sink);
        } else {
          this.#parts.push(piece);
          const line = Buffer.concat(this.#parts, this.#partLen + piece.length);
          this.#parts = [];
          this.#partLen = 0;
          this.#emit(line, end, sink);
        }
      }
      this.#lineStart = end;
      start = nl + 1;
    }
  }

  /**
   * Emits the unfinished line as if it ended here (a Concurrent-log file whose writer does not
   * end its one record with a newline, once the file is quiet). False when nothing was held.
   */
  flushPartial(sink: LineSink): boolean {
    if (this.pending === 0) return false;
    const end = this.#pos;
    if (this.#skipping) this.#endOversize(end, sink);
    else {
      const line = Buffer.concat(this.#parts, this.#partLen);
      this.#parts = [];
      this.#partLen = 0;
      this.#emit(line, end, sink);
    }
    this.#lineStart = end;
    return true;
  }

  #hold(piece: Buffer): void {
    if (this.#skipping) {
      this.#skip(piece);
      return;
    }
    // One byte of slack: a CR that turns out to belong to the terminator.
    if (this.#partLen + piece.length > this.maxRecordBytes + 1) {
      this.#startSkipping();
      this.#skip(piece);
      return;
    }
    this.#parts.push(piece);
    this.#partLen += piece.length;
  }

  #startSkipping(): void {
    const held = Buffer.concat(this.#parts, this.#partLen);
    this.#parts = [];
    this.#partLen = 0;
    this.#skipping = true;
    this.#skipLen = 0;
    this.#skipHead = Buffer.alloc(0);
    this.#skip(held);
  }

  #skip(piece: Buffer): void {
    if (piece.length === 0) return;
    if (this.#skipHead.length < OVERSIZE_HEAD) {
      // A copy: the head must not pin the (large) chunk it came from.
      this.#skipHead = Buffer.concat([
        this.#skipHead,
        Buffer.from(piece.subarray(0, OVERSIZE_HEAD - this.#skipHead.length)),
      ]);
    }
    this.#skipLen += piece.length;
    this.#skipLast = piece[piece.length - 1] as number;
  }

  /**
   * Ends the line being skipped. Skipping starts only past `maxRecordBytes + 1` bytes, so the
   * line is too long even without a CR; the CR is only left out of the reported length.
   */
  #endOversize(end: number, sink: LineSink): void {
    const bytes = this.#skipLen - (this.#skipLast === CR ? 1 : 0);
    const head = this.#skipHead.subarray(0, bytes);
    this.#skipping = false;
    this.#skipLen = 0;
    this.#skipLast = -1;
    this.#skipHead = Buffer.alloc(0);
    sink.oversize(this.#lineStart, end, bytes, head);
  }

  #emit(raw: Buffer, end: number, sink: LineSink): void {
    let line = raw;
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, -1);
    // A UTF-8 byte-order mark at the very start of a file is metadata, not record.
    if (this.#lineStart === 0 && line[0] === 0xef && line[1] === 0xbb && line[2] === 0xbf)
      line = line.subarray(3);
    if (line.length > this.maxRecordBytes) {
      sink.oversize(
        this.#lineStart,
        end,
        line.length,
        Buffer.from(line.subarray(0, OVERSIZE_HEAD)),
      );
      return;
    }
    if (isBlank(line)) sink.blank(end);
    else sink.record(line, end);
  }
}
