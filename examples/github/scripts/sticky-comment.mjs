#!/usr/bin/env node
// sticky-comment.mjs: keep ONE comment of a kind on a pull request, and update it on every run.
//
//   node sticky-comment.mjs --repo owner/name --pr N --body-file ds-plan.md [--marker ds-plan]
//
// The comment carries a hidden marker, `<!-- ds:sticky:<marker> -->` (default marker: ds-plan). The
// script reads the pull request's comments (100 a page, until a short page) and edits the first one that
// holds the marker; when there is none, it creates one. It prints `created <id>` or `updated <id>`.
// A body over 65,000 characters is cut, with a note saying so (GitHub refuses comments over 65,536).
//
// Environment: GITHUB_TOKEN (required), GITHUB_API_URL (default https://api.github.com; GitHub Actions
// sets it, also on GitHub Enterprise Server). Node 18 or later, no dependencies.
//
// Exit codes: 0 done; 1 the API answered with an error, or could not be reached (one line on stderr with
// the HTTP status and the API's message; the token is never printed); 2 wrong arguments or environment.

import { realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';

export const DEFAULT_API = 'https://api.github.com';
export const DEFAULT_MARKER = 'ds-plan';
export const MAX_BODY = 65000;
const PER_PAGE = 100;

const USAGE = 'usage: node sticky-comment.mjs --repo owner/name --pr N --body-file FILE [--marker NAME]';

/** An error the user must fix in how the script is called (exit 2). */
export class UsageError extends Error {}

/** An answer of the API that is not a success, or a request that did not reach it (exit 1). */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** The hidden line that identifies the comment. */
export function markerLine(marker) {
  return `<!-- ds:sticky:${marker} -->`;
}

/**
 * The comment's body: the marker line, then the text, cut to at most `max` characters in all (at a line
 * end when there is one nearby) with a note at the end when it was too long.
 */
export function composeBody(text, marker, max = MAX_BODY) {
  const head = `${markerLine(marker)}\n`;
  if (head.length + text.length <= max) return head + text;
  const note =
    `\n\n---\n**Truncated:** this comment was cut to ${max.toLocaleString('en-US')} characters; ` +
    'the whole text is in the job log.\n';
  let cut = max - head.length - note.length;
  const newline = text.lastIndexOf('\n', cut);
  if (newline >= 0 && newline > cut - 2000) cut = newline;
  // Never split a surrogate pair.
  const code = text.charCodeAt(cut - 1);
  if (code >= 0xd800 && code <= 0xdbff) cut -= 1;
  return head + text.slice(0, cut) + note;
}

/** Parses the command line (without `node` and the script). Throws UsageError. */
export function parseArgs(argv) {
  const opts = { marker: DEFAULT_MARKER };
  const names = { '--repo': 'repo', '--pr': 'pr', '--body-file': 'bodyFile', '--marker': 'marker' };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (arg === '--help' || arg === '-h') throw new UsageError(USAGE);
    const key = names[arg];
    if (!key) throw new UsageError(`unknown argument \`${arg}\`; ${USAGE}`);
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`${arg} needs a value; ${USAGE}`);
      value = argv[++i];
    }
    opts[key] = value;
  }
  for (const flag of ['--repo', '--pr', '--body-file']) {
    if (opts[names[flag]] === undefined) throw new UsageError(`${flag} is required; ${USAGE}`);
  }
  if (!/^[\w.-]+\/[\w.-]+$/.test(opts.repo)) {
    throw new UsageError(`--repo \`${opts.repo}\` is not of the form owner/name`);
  }
  if (!/^[1-9][0-9]*$/.test(opts.pr)) {
    throw new UsageError(`--pr \`${opts.pr}\` is not a pull request number`);
  }
  opts.pr = Number(opts.pr);
  if (!/^[\w.-]+$/.test(opts.marker)) {
    throw new UsageError(`--marker \`${opts.marker}\` may hold only letters, digits, '_', '.' and '-'`);
  }
  return opts;
}

/** A small client for the few calls the script makes. */
export function client({ api = DEFAULT_API, token }) {
  const base = api.replace(/\/+$/, '');
  return async function request(method, path, body) {
    let res;
    try {
      res = await fetch(base + path, {
        method,
        headers: {
          Accept: 'application/vnd.github+json',
          Authorization: `Bearer ${token}`,
          'User-Agent': 'ds-sticky-comment',
          'X-GitHub-Api-Version': '2022-11-28',
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      const why = err.cause?.code ?? err.cause?.message ?? err.message;
      throw new ApiError(`${method} ${base}${path}: request failed: ${why}`);
    }
    const text = await res.text();
    let json;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!res.ok) {
      const message = (json && typeof json.message === 'string' ? json.message : text.slice(0, 200))
        .replace(/\s+/g, ' ')
        .trim();
      throw new ApiError(
        `${method} ${path}: HTTP ${res.status} ${res.statusText}${message ? `: ${message}` : ''}`,
        res.status,
      );
    }
    return json;
  };
}

/** The first comment of the pull request whose body holds the marker, or null. */
export async function findComment(request, { repo, pr, marker }) {
  const line = markerLine(marker);
  for (let page = 1; ; page++) {
    const comments = await request(
      'GET',
      `/repos/${repo}/issues/${pr}/comments?per_page=${PER_PAGE}&page=${page}`,
    );
    if (!Array.isArray(comments)) {
      throw new ApiError(`GET /repos/${repo}/issues/${pr}/comments: the answer is not a list`);
    }
    const found = comments.find((c) => typeof c.body === 'string' && c.body.includes(line));
    if (found) return found;
    if (comments.length < PER_PAGE) return null;
  }
}

/** Edits the marked comment or creates it. Returns { action: 'created' | 'updated', id }. */
export async function upsertComment(request, { repo, pr, marker, text }) {
  const body = composeBody(text, marker);
  const existing = await findComment(request, { repo, pr, marker });
  if (existing) {
    const updated = await request('PATCH', `/repos/${repo}/issues/comments/${existing.id}`, { body });
    return { action: 'updated', id: updated?.id ?? existing.id };
  }
  const created = await request('POST', `/repos/${repo}/issues/${pr}/comments`, { body });
  return { action: 'created', id: created?.id };
}

/** The whole command. Returns the exit code; writes one line to `out` or to `err`. */
export async function main(argv, env = process.env, out = process.stdout, err = process.stderr) {
  const token = env.GITHUB_TOKEN ?? '';
  const fail = (code, message) => {
    const safe = token ? message.split(token).join('***') : message;
    err.write(`sticky-comment: ${safe}\n`);
    return code;
  };
  let opts;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) return fail(2, e.message);
    throw e;
  }
  if (!token) return fail(2, 'GITHUB_TOKEN is not set');
  let text;
  try {
    text = await readFile(opts.bodyFile, 'utf8');
  } catch (e) {
    return fail(2, `cannot read --body-file ${opts.bodyFile}: ${e.code ?? e.message}`);
  }
  const request = client({ api: env.GITHUB_API_URL || DEFAULT_API, token });
  try {
    const { action, id } = await upsertComment(request, { ...opts, text });
    out.write(`${action} ${id}\n`);
    return 0;
  } catch (e) {
    if (e instanceof ApiError) return fail(1, e.message);
    return fail(1, e.message ?? String(e));
  }
}

function isMain() {
  try {
    return import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  process.exitCode = await main(process.argv.slice(2));
}
