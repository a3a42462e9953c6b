/**
 * The CLI's logger: plain lines on stderr, debug lines only with --debug. The
 * library never writes there itself: it reports through what it is given
 * (onWarning, onNote, a RunLog), and the commands pass this logger on.
 */
let debugEnabled = false;

export function setDebug(on: boolean): void {
  debugEnabled = on;
}

export const log = {
  debug(msg: string): void {
    if (debugEnabled) process.stderr.write(`dist: debug: ${msg}\n`);
  },
  info(msg: string): void {
    process.stderr.write(`dist: ${msg}\n`);
  },
  warn(msg: string): void {
    process.stderr.write(`dist: warning: ${msg}\n`);
  },
};
