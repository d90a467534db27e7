// Tests of sticky-comment.mjs: `node --test examples/github/scripts/*.test.mjs` (scripts/check-workflows).
//
// The script runs as a child process, as the workflow runs it, against a small fake of the GitHub REST
// API: a node:http server on 127.0.0.1 at a random port, which keeps comments in memory and records
// every request it receives.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { composeBody, markerLine, MAX_BODY, parseArgs, UsageError } from './sticky-comment.mjs';

const SCRIPT = fileURLToPath(new URL('./sticky-comment.mjs', import.meta.url));
const TOKEN = 'ghs_faketoken0123456789abcdefABCDEF';
const REPO = 'acme/model';
const PR = 7;
const MARK = markerLine('ds-plan');

/** The fake API. `prefix` mounts it under a path, as GitHub Enterprise Server does (`/api/v3`). */
async function fakeGitHub(prefix = '') {
  const api = {
    comments: new Map(), // pull request number -> [{ id, body, user }]
    requests: [], // { method, path, query, authorization, body }
    fail: null, // { status, message, method? }: answer every request (of that method) so
    nextId: 1000,
    url: '',
    list(pr) {
      if (!api.comments.has(pr)) api.comments.set(pr, []);
      return api.comments.get(pr);
    },
    add(pr, body, login = 'someone') {
      const comment = { id: api.nextId++, body, user: { login } };
      api.list(pr).push(comment);
      return comment;
    },
  };
  const server = http.createServer(async (req, res) => {
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const url = new URL(req.url, 'http://fake');
    const send = (status, json) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(json));
    };
    const path = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : null;
    api.requests.push({
      method: req.method,
      path,
      query: Object.fromEntries(url.searchParams),
      authorization: req.headers.authorization,
      body: raw ? JSON.parse(raw) : undefined,
    });
    if (api.fail && (!api.fail.method || api.fail.method === req.method)) {
      return send(api.fail.status, { message: api.fail.message });
    }
    if (path === null) return send(404, { message: 'Not Found' });
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return send(401, { message: 'Bad credentials' });
    let m;
    if ((m = path.match(/^\/repos\/([^/]+\/[^/]+)\/issues\/(\d+)\/comments$/)) && m[1] === REPO) {
      const pr = Number(m[2]);
      if (req.method === 'GET') {
        const perPage = Number(url.searchParams.get('per_page') ?? 30);
        const page = Number(url.searchParams.get('page') ?? 1);
        return send(200, api.list(pr).slice((page - 1) * perPage, page * perPage));
      }
      if (req.method === 'POST') return send(201, api.add(pr, JSON.parse(raw).body, 'github-actions[bot]'));
    }
    if ((m = path.match(/^\/repos\/([^/]+\/[^/]+)\/issues\/comments\/(\d+)$/)) && req.method === 'PATCH') {
      for (const list of api.comments.values()) {
        const comment = list.find((c) => c.id === Number(m[2]));
        if (comment) {
          comment.body = JSON.parse(raw).body;
          return send(200, comment);
        }
      }
    }
    return send(404, { message: 'Not Found' });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  api.url = `http://127.0.0.1:${server.address().port}${prefix}`;
  api.close = () => new Promise((resolve) => server.close(resolve));
  return api;
}

/** Runs the script; never rejects. Asynchronous, so that the fake server keeps answering meanwhile. */
function run(args, env) {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [SCRIPT, ...args],
      { env: { PATH: process.env.PATH, ...env }, timeout: 20000 },
      (error, stdout, stderr) => {
        resolve({ code: error ? (error.code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

let dir;
let gh;
let bodyFile;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sticky-comment-'));
  bodyFile = join(dir, 'ds-plan.md');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('against the fake API', () => {
  beforeEach(async () => {
    await gh?.close();
    gh = await fakeGitHub();
    await writeFile(bodyFile, '## ds plan\n\n2 to create.\n');
  });
  after(async () => {
    await gh?.close();
  });

  const args = () => ['--repo', REPO, '--pr', String(PR), '--body-file', bodyFile];
  const env = () => ({ GITHUB_TOKEN: TOKEN, GITHUB_API_URL: gh.url });

  test('creates the comment when there is none, with the marker first', async () => {
    gh.add(PR, 'LGTM');
    const r = await run(args(), env());
    assert.equal(r.code, 0, r.stderr);
    const comments = gh.list(PR);
    assert.equal(comments.length, 2);
    assert.equal(r.stdout, `created ${comments[1].id}\n`);
    assert.equal(comments[1].body, `${MARK}\n## ds plan\n\n2 to create.\n`);
    assert.equal(comments[0].body, 'LGTM');
    assert.equal(r.stderr, '');
  });

  test('updates the comment with the marker, and no other', async () => {
    const other = gh.add(PR, 'a comment without the marker');
    const mine = gh.add(PR, `${MARK}\nthe old plan`);
    const later = gh.add(PR, 'another one');
    const r = await run(args(), env());
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `updated ${mine.id}\n`);
    assert.equal(mine.body, `${MARK}\n## ds plan\n\n2 to create.\n`);
    assert.equal(other.body, 'a comment without the marker');
    assert.equal(later.body, 'another one');
    assert.equal(gh.list(PR).length, 3);
    const writes = gh.requests.filter((q) => q.method !== 'GET');
    assert.deepEqual(
      writes.map((q) => [q.method, q.path]),
      [['PATCH', `/repos/${REPO}/issues/comments/${mine.id}`]],
    );
  });

  test('a comment with another marker is not ours', async () => {
    const theirs = gh.add(PR, `${markerLine('ds-plan-2')}\nsomething else`);
    const r = await run(args(), env());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^created \d+\n$/);
    assert.equal(theirs.body, `${markerLine('ds-plan-2')}\nsomething else`);
    assert.equal(gh.list(PR).length, 2);
  });

  test('finds the marker on the second page, and stops at the short page', async () => {
    for (let i = 0; i < 100; i++) gh.add(PR, `comment ${i}`);
    const mine = gh.add(PR, `${MARK}\nthe old plan`);
    for (let i = 0; i < 5; i++) gh.add(PR, `later ${i}`);
    const r = await run(args(), env());
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `updated ${mine.id}\n`);
    const pages = gh.requests.filter((q) => q.method === 'GET').map((q) => q.query);
    assert.deepEqual(pages, [
      { per_page: '100', page: '1' },
      { per_page: '100', page: '2' },
    ]);
  });

  test('reads every page before it creates', async () => {
    for (let i = 0; i < 200; i++) gh.add(PR, `comment ${i}`);
    const r = await run(args(), env());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^created \d+\n$/);
    const pages = gh.requests.filter((q) => q.method === 'GET').map((q) => q.query.page);
    assert.deepEqual(pages, ['1', '2', '3']);
  });

  test('a second run updates the comment the first one created', async () => {
    const first = await run(args(), env());
    assert.equal(first.code, 0, first.stderr);
    const id = first.stdout.match(/^created (\d+)\n$/)[1];
    await writeFile(bodyFile, '## ds plan\n\nNo changes.\n');
    const second = await run(args(), env());
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, `updated ${id}\n`);
    assert.equal(gh.list(PR).length, 1);
    assert.equal(gh.list(PR)[0].body, `${MARK}\n## ds plan\n\nNo changes.\n`);
  });

  test('--marker keeps a separate comment', async () => {
    const plan = gh.add(PR, `${MARK}\nthe plan`);
    const r = await run([...args(), '--marker', 'ds-other'], env());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^created \d+\n$/);
    assert.equal(plan.body, `${MARK}\nthe plan`);
    assert.ok(gh.list(PR)[1].body.startsWith(`${markerLine('ds-other')}\n`));
  });

  test('sends the token as a bearer token on every request', async () => {
    gh.add(PR, `${MARK}\nold`);
    const r = await run(args(), env());
    assert.equal(r.code, 0, r.stderr);
    assert.ok(gh.requests.length >= 2);
    for (const q of gh.requests) assert.equal(q.authorization, `Bearer ${TOKEN}`);
  });

  test('an API error: exit 1, one line with the status and the message, no token', async () => {
    gh.fail = { status: 403, message: 'Resource not accessible by integration' };
    const r = await run(args(), env());
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.split('\n').length, 2, r.stderr); // one line and its newline
    assert.match(r.stderr, /^sticky-comment: GET \/repos\/acme\/model\/issues\/7\/comments\?per_page=100&page=1: HTTP 403 /);
    assert.match(r.stderr, /Resource not accessible by integration\n$/);
    assert.ok(!r.stderr.includes(TOKEN));
  });

  test('an error message that repeats the token does not print it', async () => {
    gh.fail = { status: 401, message: `Bad credentials: ${TOKEN}` };
    const r = await run(args(), env());
    assert.equal(r.code, 1);
    assert.ok(!r.stderr.includes(TOKEN), r.stderr);
    assert.match(r.stderr, /HTTP 401 .*Bad credentials: \*\*\*/);
  });

  test('an error on the write: exit 1, nothing on stdout', async () => {
    gh.fail = { status: 422, message: 'Validation Failed', method: 'POST' };
    const r = await run(args(), env());
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `sticky-comment: POST /repos/${REPO}/issues/${PR}/comments: HTTP 422 Unprocessable Entity: Validation Failed\n`);
  });

  test('an unknown repository: exit 1 with the 404', async () => {
    const r = await run(['--repo', 'acme/other', '--pr', '8', '--body-file', bodyFile], env());
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /HTTP 404 Not Found: Not Found\n$/);
  });

  test('a server that cannot be reached: exit 1 with the reason', async () => {
    const url = gh.url;
    await gh.close();
    gh = null;
    const r = await run(args(), { GITHUB_TOKEN: TOKEN, GITHUB_API_URL: url });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^sticky-comment: GET http:\/\/127\.0\.0\.1:\d+\/repos\/.*: request failed: ECONNREFUSED\n$/);
  });

  test('without GITHUB_TOKEN: exit 2, and no request', async () => {
    const r = await run(args(), { GITHUB_API_URL: gh.url });
    assert.equal(r.code, 2);
    assert.equal(r.stderr, 'sticky-comment: GITHUB_TOKEN is not set\n');
    assert.equal(gh.requests.length, 0);
  });

  test('a missing body file: exit 2', async () => {
    const r = await run(['--repo', REPO, '--pr', '7', '--body-file', join(dir, 'nope.md')], env());
    assert.equal(r.code, 2);
    assert.match(r.stderr, /cannot read --body-file .*nope\.md: ENOENT\n$/);
    assert.equal(gh.requests.length, 0);
  });

  test('a body over 65,000 characters is cut, with a note', async () => {
    await writeFile(bodyFile, 'x'.repeat(79) + '\n' + ('y'.repeat(99) + '\n').repeat(1000));
    const r = await run(args(), env());
    assert.equal(r.code, 0, r.stderr);
    const body = gh.list(PR)[0].body;
    assert.ok(body.length <= MAX_BODY, `${body.length}`);
    assert.ok(body.startsWith(`${MARK}\nxxx`));
    assert.match(body, /\n\*\*Truncated:\*\* this comment was cut to 65,000 characters/);
  });
});

describe('under a path prefix (GitHub Enterprise Server)', () => {
  test('keeps the prefix of GITHUB_API_URL, with or without a trailing slash', async () => {
    const ghes = await fakeGitHub('/api/v3');
    try {
      await writeFile(bodyFile, 'plan');
      for (const api of [ghes.url, `${ghes.url}/`]) {
        const r = await run(['--repo', REPO, '--pr', '3', '--body-file', bodyFile], {
          GITHUB_TOKEN: TOKEN,
          GITHUB_API_URL: api,
        });
        assert.equal(r.code, 0, r.stderr);
      }
      assert.ok(ghes.requests.every((q) => q.path !== null));
      assert.equal(ghes.list(3).length, 1);
    } finally {
      await ghes.close();
    }
  });
});

describe('without a server', () => {
  test('composeBody: short text is kept whole, after the marker', () => {
    assert.equal(composeBody('hello', 'ds-plan'), `${MARK}\nhello`);
  });

  test('composeBody: cuts at a line end, never splits a surrogate pair, stays under the limit', () => {
    const lines = composeBody(('a'.repeat(50) + '\n').repeat(100), 'm', 1000);
    assert.ok(lines.length <= 1000);
    assert.match(lines, /a\n\n---\n\*\*Truncated:\*\*/);
    const emoji = composeBody('😀'.repeat(1000), 'm', 1001);
    assert.ok(emoji.length <= 1001);
    assert.ok(emoji.isWellFormed ? emoji.isWellFormed() : !/[\ud800-\udbff](?![\udc00-\udfff])/.test(emoji));
  });

  test('parseArgs: required flags, forms, and checks', () => {
    assert.deepEqual(parseArgs(['--repo', 'a/b', '--pr', '12', '--body-file', 'f']), {
      repo: 'a/b',
      pr: 12,
      bodyFile: 'f',
      marker: 'ds-plan',
    });
    assert.equal(parseArgs(['--repo=a/b', '--pr=1', '--body-file=f', '--marker=x']).marker, 'x');
    for (const argv of [
      ['--pr', '1', '--body-file', 'f'],
      ['--repo', 'ab', '--pr', '1', '--body-file', 'f'],
      ['--repo', 'a/b', '--pr', '0', '--body-file', 'f'],
      ['--repo', 'a/b', '--pr', '1x', '--body-file', 'f'],
      ['--repo', 'a/b', '--pr', '1', '--body-file', 'f', '--marker', 'a b'],
      ['--repo', 'a/b', '--pr', '1', '--body-file'],
      ['--repo', 'a/b', '--pr', '1', '--body-file', 'f', '--oops'],
    ]) {
      assert.throws(() => parseArgs(argv), UsageError, argv.join(' '));
    }
  });
});
