'use strict';
// code-runner's Node launcher: started warm by the agent, runs one program in this process.
// Protocol: write "ready\n" on fd 4 (AF_UNIX control socket), then read one JSON line from it:
//   {"entry": "/workspace/main.js", "args": [...], "tty": false}.
// Unless tty, everything the program writes to process.stdout/stderr goes to fd 3 as frames:
//   kind '1'|'2' (1 byte), payload length (u32 BE), payload (<= 4091 bytes: one atomic write each).
// The entry then runs as the main module, exactly as `node entry args...` would run it.
const fs = require('fs');
const path = require('path');
const util = require('util');
const Module = require('module');

const MAX_PAYLOAD = 4091; // 5-byte header + payload <= PIPE_BUF, so each frame's write is atomic
const pause = new Int32Array(new SharedArrayBuffer(4));

function retrying(call) { // the fds are normally blocking; if one is not, wait instead of failing
  for (;;) {
    try { return call(); } catch (err) { if (err.code !== 'EAGAIN') throw err; }
    Atomics.wait(pause, 0, 0, 1);
  }
}

function sendFrames(kind, data, fd = 3) {
  for (let off = 0; off < data.length;) {
    let end = Math.min(off + MAX_PAYLOAD, data.length);
    // Cut between UTF-8 characters (never before a continuation byte) when a character allows it.
    for (let back = 0; back < 3 && end < data.length && (data[end] & 0xc0) === 0x80; back++) end--;
    const frame = Buffer.allocUnsafe(5 + end - off);
    frame[0] = kind;
    frame.writeUInt32BE(end - off, 1);
    data.copy(frame, 5, off, end);
    for (let done = 0; done < frame.length;) done += retrying(() => fs.writeSync(fd, frame, done));
    off = end;
  }
}

function routeToChannel(stream, kind) { // keep the stream object (fd, events, pipe()), replace its sink
  const bytes = (chunk, encoding) => (typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk);
  stream._write = (chunk, encoding, done) => { sendFrames(kind, bytes(chunk, encoding)); done(); };
  stream._writev = (chunks, done) => {
    for (const { chunk, encoding } of chunks) sendFrames(kind, bytes(chunk, encoding));
    done();
  };
}

function crashReport(err) { // what node prints for an uncaught exception
  const isError = util.types.isNativeError(err) || err instanceof Error;
  if (!isError || typeof err.stack !== 'string') {
    return `${typeof err === 'string' ? err : util.inspect(err)}\n(Use \`node --trace-uncaught ...\` ` +
      `to show where the exception was thrown)\n\nNode.js ${process.version}\n`;
  }
  const lines = err.stack.split('\n');
  let arrow = '';
  const at = /^\/.*:\d+$/.test(lines[0]) ? null : /^ {4}at (?:.*\()?(\/[^()]*):(\d+):(\d+)\)?$/.exec(lines[1]);
  if (at) { // the source line and a caret at the top frame, as node shows for unhandled rejections
    try {
      const source = fs.readFileSync(at[1], 'utf8').split('\n')[at[2] - 1].replace(/\r$/, '');
      arrow = `${at[1]}:${at[2]}\n${source}\n${source.slice(0, at[3] - 1).replace(/[^\t]/g, ' ')}^\n\n`;
    } catch {}
  }
  return `${arrow}${util.inspect(err)}\n\nNode.js ${process.version}\n`;
}

const { stdout, stderr } = process; // created now, while warming

function warmUp() { // run console and the frame writer once, output discarded, so the job pays less
  for (const stream of [stdout, stderr]) stream._write = (chunk, encoding, done) => done();
  console.log('%s %d', 'warm', 1, { a: [1] });
  console.error('warm');
  for (const stream of [stdout, stderr]) delete stream._write;
  const devNull = fs.openSync('/dev/null', 'w');
  sendFrames(0x31, Buffer.from('warm'), devNull);
  fs.closeSync(devNull);
}

function runJob() {
  retrying(() => fs.writeSync(4, 'ready\n'));
  const chunks = [];
  do {
    const chunk = Buffer.alloc(65536);
    const n = retrying(() => fs.readSync(4, chunk, 0, chunk.length, null));
    if (n === 0) process.exit(1); // the agent went away before sending a job
    chunks.push(chunk.subarray(0, n));
  } while (chunks.at(-1).at(-1) !== 0x0a);
  const job = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  fs.closeSync(4); // the program must not speak for the launcher
  if (!job.tty) {
    routeToChannel(stdout, 0x31);
    routeToChannel(stderr, 0x32);
  }
  process.on('uncaughtException', (err) => {
    if (process.listenerCount('uncaughtException') > 1) return; // the program handles its own
    stderr.write(crashReport(err));
    process.exit(1);
  });
  const entry = path.resolve(job.entry);
  process.argv = [process.execPath, entry, ...(job.args || [])];
  setImmediate(Module.runMain, entry); // from the event loop: no launcher frames in the program's stacks
  // Once nothing is left to do, exit at once rather than through node's full teardown (~20 ms),
  // unless the program listens for beforeExit itself (it may schedule more work there).
  setImmediate(() => process.on('beforeExit', (code) => {
    if (process.listenerCount('beforeExit') === 1) process.exit(code);
  }));
}

warmUp();
setImmediate(runJob); // wait for the job with the event loop already running: a faster start
