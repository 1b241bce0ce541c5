// Browser scenarios for tests/browser (pytest): real headless Chromium driven by
// playwright-core against a running Kawa host. Usage:
//   node scenarios.mjs SCENARIO   with KAWA_BROWSER = JSON {url, token, shots, ...}
// Prints one JSON line of results on success; exits 1 with the reason on failure.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'

const args = JSON.parse(process.env.KAWA_BROWSER || '{}')
const CHROMIUM = process.env.KAWA_CHROMIUM || '/usr/bin/chromium'
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run']
const LONG = 90_000

function check(condition, message) {
  if (!condition) throw new Error(message)
}

async function withPage(options, body) {
  const profile = mkdtempSync(join(tmpdir(), 'kawa-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 860 },
    ...options,
  })
  const problems = []
  try {
    const page = context.pages()[0] || (await context.newPage())
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
    page.setDefaultTimeout(30_000)
    try {
      const result = await body(page)
      check(!problems.length, problems.join('\n'))
      return result
    } catch (exc) {
      await shot(page, 'failure').catch(() => {})
      const shown = await page.locator('body').innerText().catch(() => '')
      exc.message += `\n--- page at ${page.url()} ---\n${shown.slice(0, 3000)}`
      throw exc
    }
  } finally {
    await context.close()
    rmSync(profile, { recursive: true, force: true })
  }
}

async function shot(page, name) {
  mkdirSync(args.shots, { recursive: true })
  await page.screenshot({ path: join(args.shots, `${name}.png`), fullPage: true })
}

async function login(page, token = args.token) {
  await page.goto(`${args.url}/`)
  await page.waitForURL(/\/login/)
  await page.fill('[data-test=token]', token)
  await page.click('[data-test=login]')
  await page.waitForSelector('[data-test=connection].live')
}

const text = (page, selector) => page.locator(selector).first().innerText()

const scenarios = {
  async login_nodes() {
    return withPage({}, async (page) => {
      await page.goto(`${args.url}/nodes`)
      await page.waitForURL(/\/login\?next=/)
      await shot(page, 'login')
      await page.fill('[data-test=token]', 'not-a-token')
      await page.click('[data-test=login]')
      const refused = await text(page, '[data-test=login-error]')
      check(refused.includes('refused'), `a bad token: ${refused}`)
      await page.fill('[data-test=token]', args.token)
      await page.click('[data-test=login]')
      await page.waitForURL(/\/nodes$/) // back where the user was going
      await page.waitForSelector('[data-test=connection].live')
      const board = page.locator(`[data-node="${args.node}"]`)
      await board.waitFor()
      await page.waitForFunction((n) => {
        const el = document.querySelector(`[data-node="${n}"] [data-test=node-status]`)
        return el && el.textContent.trim() === 'online'
      }, args.node)
      const boardText = await board.innerText()
      check(/NUMA \d+/.test(boardText), `no NUMA zone on the board: ${boardText}`)
      const cpus = await board.locator('.cpu').count()
      const gpuBoard = page.locator(`[data-node="${args.gpu_node}"]`)
      await page.waitForFunction((n) => (document.querySelector(`[data-node="${n}"]`)?.innerText || '').includes('1 running'), args.gpu_node)
      const gpuCells = await gpuBoard.locator('[data-test=gpu-cell]').allInnerTexts()
      const gpuBoardText = await gpuBoard.innerText()
      // history charts (uPlot, loaded on demand): CPU/memory and one per GPU
      await gpuBoard.locator('button', { hasText: 'history' }).click()
      await page.waitForFunction((n) => document.querySelectorAll(`[data-node="${n}"] .uplot`).length >= 5, args.gpu_node)
      const charts = await gpuBoard.locator('.uplot .u-title').allInnerTexts()
      await shot(page, 'node-history')
      await shot(page, 'nodes')
      // g o: the overview, by keyboard
      await page.locator('body').click({ position: { x: 5, y: 300 } })
      await page.keyboard.press('g')
      await page.keyboard.press('o')
      await page.waitForURL(`${args.url}/`)
      await page.waitForFunction(() => /\b2 online/.test(document.querySelector('[data-test=node-counts]')?.textContent || ''))
      const cores = await text(page, '[data-test=cores]')
      await shot(page, 'overview')
      await page.keyboard.press('?')
      await page.waitForSelector('[data-test=help]')
      const help = await text(page, '[data-test=help]')
      await page.keyboard.press('Escape')
      // g g: the GPUs page, by keyboard (a row per GPU, or says there is none)
      await page.keyboard.press('g')
      await page.keyboard.press('g')
      await page.waitForURL(`${args.url}/gpus`)
      await page.waitForFunction(() => document.querySelector('h1')?.textContent.trim() === 'GPUs')
      const gpusHeading = await text(page, 'h1')
      await page.waitForFunction(() => document.querySelector('[data-test=gpu-row]')
        || document.querySelector('[data-test=gpus-empty]')?.textContent.trim() === 'no GPUs in the cluster')
      const gpuRows = await page.locator('[data-test=gpu-row]').allInnerTexts()
      const gpusEmpty = gpuRows.length ? '' : await text(page, '[data-test=gpus-empty]')
      await shot(page, 'gpus')
      // an admin drains node1 and takes it back
      await page.goto(`${args.url}/nodes`)
      await page.locator(`[data-node="${args.node}"] [data-test=drain]`).click()
      await page.waitForFunction((n) => (document.querySelector(`[data-node="${n}"] [data-test=node-status]`)?.textContent || '').trim() === 'draining', args.node)
      const drained = await page.locator(`[data-node="${args.node}"] [data-test=node-status]`).innerText()
      await page.locator(`[data-node="${args.node}"] [data-test=undrain]`).click()
      await page.waitForFunction((n) => (document.querySelector(`[data-node="${n}"] [data-test=node-status]`)?.textContent || '').trim() === 'online', args.node)
      return { drained, boardText, cpus, gpuBoard: gpuBoardText, gpuCells, charts, cores, help, gpusHeading, gpuRows, gpusEmpty }
    })
  },

  async submit_logs() {
    return withPage({}, async (page) => {
      await login(page)
      await page.click('[data-test=nav-submit]')
      await page.waitForURL(/\/submit$/)
      await page.fill('[data-test=command]', args.command)
      await page.fill('[data-test=name]', 'from-the-form')
      // a bad memory value first: its error (in the host's words) shows next to the field
      await page.fill('[data-test=memory]', 'lots')
      await page.click('[data-test=submit]')
      await page.waitForFunction(() => document.querySelector('[data-test=error-memory]')?.textContent.trim())
      const memoryError = await text(page, '[data-test=error-memory]')
      await page.fill('[data-test=memory]', '')
      await page.selectOption('[data-test=pick-node]', args.node)
      await page.selectOption('[data-test=pick-numa]', '0')
      await page.click('[data-test=add-target]')
      const targets = await text(page, '[data-test=targets]')
      await page.click('[data-test=check]')
      await page.waitForFunction(() => document.querySelector('[data-test=check-result]')?.textContent.trim() && !document.querySelector('[data-test=check-result]').textContent.includes('…'))
      const check_ = await text(page, '[data-test=check-result]')
      await shot(page, 'submit')
      await page.click('[data-test=submit]')
      await page.waitForURL(/\/tasks\/\d+$/)
      const id = page.url().split('/').pop()
      // live logs: the first line shows while the task still runs
      await page.waitForFunction(() => (document.querySelector('[data-test=log-text]')?.textContent || '').includes('tick-1'), null, { timeout: LONG })
      const stateAtFirstLine = await text(page, '[data-test=detail-state]')
      await shot(page, 'task-running')
      await page.waitForFunction(() => document.querySelector('[data-test=detail-state]')?.textContent.trim() === 'completed', null, { timeout: LONG })
      await page.waitForFunction(() => (document.querySelector('[data-test=log-text]')?.textContent || '').includes('done-42'), null, { timeout: LONG })
      await page.waitForFunction(() => document.querySelector('[data-test=log-status]')?.textContent.trim() === 'end of log', null, { timeout: LONG })
      const log = await text(page, '[data-test=log-text]')
      const exit = await text(page, '[data-test=exit-code]')
      const history = await text(page, '[data-test=history]')
      await shot(page, 'task-completed')
      await page.click('[data-test=stderr]')
      await page.waitForFunction(() => (document.querySelector('[data-test=log-text]')?.textContent || '').includes('to-stderr'))
      // the task list, updated live, newest first
      await page.goto(`${args.url}/tasks`)
      await page.waitForSelector(`[data-task="${id}"]`)
      const row = await page.locator(`[data-task="${id}"]`).innerText()
      await shot(page, 'tasks')
      return { id, memoryError, targets, check: check_, stateAtFirstLine, log, exit, history, row }
    })
  },

  async terminal() {
    return withPage({}, async (page) => {
      await login(page)
      await page.goto(`${args.url}/tasks/${args.task}`)
      await page.click('[data-test=open-terminal]')
      await page.waitForURL(/\/terminal\/tasks\/\d+$/)
      await page.waitForFunction(() => document.querySelector('[data-test=term-status]')?.textContent.trim() === 'connected', null, { timeout: LONG })
      const screen = () => page.locator('.xterm-rows').innerText()
      await page.click('[data-test=terminal]')
      await page.keyboard.type('echo $((6*7))\n')
      await page.waitForFunction(() => /^42\s*$/m.test(document.querySelector('.xterm-rows')?.innerText || ''), null, { timeout: LONG })
      const first = await screen()
      await shot(page, 'terminal')
      const before = await page.locator('[data-test=term-size]').getAttribute('data-cols')
      await page.setViewportSize({ width: 900, height: 600 })
      await page.waitForFunction((b) => document.querySelector('[data-test=term-size]')?.dataset.cols !== b, before)
      const rows = await page.locator('[data-test=term-size]').getAttribute('data-rows')
      const cols = await page.locator('[data-test=term-size]').getAttribute('data-cols')
      await page.keyboard.type('stty size\n')
      await page.waitForFunction((want) => (document.querySelector('.xterm-rows')?.innerText || '').includes(want), `${rows} ${cols}`, { timeout: LONG })
      const after = await screen()
      await shot(page, 'terminal-resized')
      // a lost connection: the page reconnects by itself, to a new shell on the same screen
      const fortyTwos = () => ((document.querySelector('.xterm-rows')?.innerText || '').match(/^42\s*$/gm) || []).length
      const before42 = await page.evaluate(fortyTwos)
      await page.evaluate(() => window.__kawaTerminal.drop())
      const lost = await page.waitForFunction(() => {
        const shown = document.querySelector('[data-test=term-status]')?.textContent.trim() || ''
        return shown.startsWith('reconnecting') && shown
      })
      const reconnecting = await lost.jsonValue()
      await page.waitForFunction(() => document.querySelector('[data-test=term-status]')?.textContent.trim() === 'connected', null, { timeout: LONG })
      const note = await text(page, '[data-test=term-note]')
      await page.click('[data-test=terminal]')
      await page.keyboard.type('echo $((6*7))\n')
      await page.waitForFunction((n) => ((document.querySelector('.xterm-rows')?.innerText || '').match(/^42\s*$/gm) || []).length > n, before42, { timeout: LONG })
      const after42 = await page.evaluate(fortyTwos)
      await shot(page, 'terminal-reconnected')
      await page.keyboard.type('exit\n')
      await page.waitForFunction(() => document.querySelector('[data-test=term-status]')?.textContent.startsWith('ended'), null, { timeout: LONG })
      const ended = await text(page, '[data-test=term-status]')
      await page.click('[data-test=reconnect]')
      await page.waitForFunction(() => document.querySelector('[data-test=term-status]')?.textContent.trim() === 'connected', null, { timeout: LONG })
      // the task's controls: pause, resume, kill (confirmed), each seen live
      page.on('dialog', (d) => d.accept())
      await page.goto(`${args.url}/tasks/${args.task}`)
      const seen = []
      for (const [action, state] of [['pause', 'paused'], ['resume', 'running'], ['kill', 'killed']]) {
        await page.click(`[data-test=act-${action}]`)
        await page.waitForFunction((want) => document.querySelector('[data-test=detail-state]')?.textContent.trim() === want, state, { timeout: LONG })
        seen.push(await text(page, '[data-test=detail-state]'))
      }
      await shot(page, 'task-killed')
      return { first, before, rows, cols, after, reconnecting, note, before42, after42, ended, seen }
    })
  },

  async vps() {
    return withPage({}, async (page) => {
      await login(page)
      await page.goto(`${args.url}/vps`)
      await page.click('[data-test=generate-key]')
      await page.waitForFunction(() => document.querySelector('[data-test=vps-key]')?.value || document.querySelector('[data-test=vps-form] .muted')?.textContent.includes('cannot make keys'))
      const generated = await page.inputValue('[data-test=vps-key]')
      if (!generated) await page.fill('[data-test=vps-key]', args.public_key)
      await page.fill('[data-test=vps-name]', 'web-vps')
      await page.click('[data-test=vps-create]')
      await page.waitForSelector('[data-test=connect-card]')
      const id = await page.locator('[data-vps]').first().getAttribute('data-vps')
      await page.waitForFunction((i) => document.querySelector(`[data-vps="${i}"] [data-test=vps-state]`)?.textContent.trim() === 'running', id, { timeout: LONG })
      const line = await text(page, '[data-test=ssh-line]')
      const config = await text(page, '[data-test=ssh-config]')
      const vscode = await page.locator('[data-test=vscode-link]').getAttribute('href')
      const forward = await text(page, '[data-test=forward-line]')
      await shot(page, 'vps')
      return { id, generated: Boolean(generated), line, config, vscode, forward }
    })
  },

  /** The submit form's Check (one target that fits, one that waits), then a VPS made with a
   * generated key: the private key is downloaded once to args.key_path. */
  async vps_generated() {
    return withPage({ acceptDownloads: true }, async (page) => {
      await login(page)
      await page.goto(`${args.url}/submit`)
      await page.fill('[data-test=command]', 'true')
      const checkFor = async (node) => {
        await page.selectOption('[data-test=pick-node]', node)
        await page.click('[data-test=add-target]')
        await page.click('[data-test=check]')
        await page.waitForFunction(() => {
          const t = document.querySelector('[data-test=check-result]')?.textContent.trim()
          return t && !t.includes('…')
        })
        const answer = await text(page, '[data-test=check-result]')
        await page.locator('[data-test=targets] button').first().click() // remove the target
        return answer
      }
      const fits = await checkFor(args.gpu_node)
      const waits = await checkFor(args.node)
      await shot(page, 'submit-check')
      await page.goto(`${args.url}/vps`)
      await page.click('[data-test=generate-key]')
      await page.waitForFunction(() => document.querySelector('[data-test=vps-key]')?.value)
      const publicKey = await page.inputValue('[data-test=vps-key]')
      const note = await text(page, '[data-test=key-note]')
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-test=download-key]')])
      await download.saveAs(args.key_path)
      const downloadName = download.suggestedFilename()
      const downloadAgain = await page.locator('[data-test=download-key]').count()
      await page.fill('[data-test=vps-name]', 'keyed-vps')
      await page.click('[data-test=vps-create]')
      await page.waitForSelector('[data-test=connect-card]')
      const id = await page.locator('[data-vps]').first().getAttribute('data-vps')
      await page.waitForFunction((i) => document.querySelector(`[data-vps="${i}"] [data-test=vps-state]`)?.textContent.trim() === 'running', id, { timeout: LONG })
      const line = await text(page, '[data-test=ssh-line]')
      const hint = await text(page, '[data-test=ssh-key-hint]')
      await shot(page, 'vps-generated')
      return { fits, waits, id, publicKey, note, downloadName, downloadAgain, line, hint }
    })
  },

  /** A batch whose tasks exit 0, 1 and 2 (args.batch, args.ids; args.failed fails), read in
   * the task list and on a task's page; then workspace args.ws packaged from its row. */
  async batch_package() {
    return withPage({}, async (page) => {
      await login(page)
      await page.goto(`${args.url}/tasks?batch=${args.batch}`)
      await page.waitForFunction((ids) => ids.every((i) => document.querySelector(`[data-task="${i}"] [data-test=task-exit]`)), args.ids, { timeout: LONG })
      const rows = {}
      for (const i of args.ids) rows[i] = await page.locator(`[data-task="${i}"]`).innerText()
      const listed = await page.locator('[data-task]').count()
      await shot(page, 'batch')
      await page.click(`[data-task="${args.failed}"] a`)
      await page.waitForURL(new RegExp(`/tasks/${args.failed}$`))
      await page.waitForSelector('[data-test=exit-code]')
      const detail = { state: await text(page, '[data-test=detail-state]'), exit: await text(page, '[data-test=exit-code]') }
      await shot(page, 'batch-failed-task')
      await page.goto(`${args.url}/environments`)
      const row = page.locator(`[data-ws="${args.ws}"]`)
      await row.waitFor()
      const before = await page.locator('[data-version]').count()
      await row.locator('button', { hasText: 'package' }).click()
      await page.waitForFunction((w) => /packaged version|failed/.test(document.querySelector(`[data-ws="${w}"] [data-test=ws-progress]`)?.textContent || ''), args.ws, { timeout: 180_000 })
      const progress = await row.locator('[data-test=ws-progress]').innerText()
      const version = progress.replace('packaged version ', '').trim()
      const versionRow = page.locator(`[data-version="${args.ws}:${version}"]`)
      await versionRow.waitFor()
      await shot(page, 'packaged')
      return {
        rows, listed, detail, before, progress, version,
        after: await page.locator('[data-version]').count(),
        size: await versionRow.locator('[data-test=version-size]').innerText(),
        digest: await versionRow.locator('[data-test=version-digest]').innerText(),
        digestTitle: await versionRow.locator('[data-test=version-digest]').getAttribute('title'),
        versionText: await versionRow.innerText(),
      }
    })
  },

  async environments() {
    return withPage({}, async (page) => {
      page.on('dialog', (d) => d.accept())
      await login(page)
      await page.keyboard.press('g')
      await page.keyboard.press('e')
      await page.waitForURL(/\/environments$/)
      await page.fill('[data-test=ws-name]', 'webws')
      await page.click('[data-test=ws-create]')
      const row = page.locator('[data-ws=webws]')
      const state = () => row.locator('[data-test=ws-state]').innerText()
      await row.waitFor({ timeout: LONG })
      await page.waitForFunction(() => document.querySelector('[data-ws=webws] [data-test=ws-state]')?.textContent.startsWith('running'), null, { timeout: LONG })
      await shot(page, 'environments')
      await row.locator('a', { hasText: 'shell' }).click()
      await page.waitForURL(/\/terminal\/environments\/webws$/)
      await page.waitForFunction(() => document.querySelector('[data-test=term-status]')?.textContent.trim() === 'connected', null, { timeout: LONG })
      await page.click('[data-test=terminal]')
      await page.keyboard.type('echo ws-$((6*7))\n')
      await page.waitForFunction(() => /^ws-42\s*$/m.test(document.querySelector('.xterm-rows')?.innerText || ''), null, { timeout: LONG })
      await shot(page, 'workspace-shell')
      await page.goto(`${args.url}/environments`)
      await row.waitFor()
      await row.locator('button', { hasText: 'stop' }).click()
      await page.waitForFunction(() => !document.querySelector('[data-ws=webws] [data-test=ws-state]')?.textContent.startsWith('running'), null, { timeout: LONG })
      const stopped = await state()
      await row.locator('button', { hasText: 'delete' }).click()
      await row.waitFor({ state: 'detached', timeout: LONG })
      const error = await page.locator('[data-test=env-error]').count()
      return { stopped, error }
    })
  },

  async viewer() {
    return withPage({}, async (page) => {
      await login(page)
      const role = await text(page, '[data-test=role]')
      const submitLinks = await page.locator('[data-test=nav-submit]').count()
      await page.goto(`${args.url}/nodes`)
      await page.locator(`[data-node="${args.node}"]`).waitFor()
      const drains = await page.locator('[data-test=drain], [data-test=undrain]').count()
      await page.goto(`${args.url}/tasks/${args.task}`)
      await page.waitForSelector('[data-test=task-error]')
      const taskError = await text(page, '[data-test=task-error]')
      await page.goto(`${args.url}/vps`)
      await page.waitForSelector('[data-test=vps-table]')
      const vpsForms = await page.locator('[data-test=vps-form]').count()
      await shot(page, 'viewer-vps')
      // the API refuses the viewer too: a submission posted from the page with its token
      const posted = await page.evaluate(async (token) => {
        const answer = await fetch('/api/v1/tasks', {
          method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ command: ['true'], name: 'from-a-viewer' }),
        })
        return { status: answer.status, detail: (await answer.json().catch(() => ({}))).detail || '' }
      }, args.token)
      return { role, submitLinks, drains, taskError, vpsForms, posted }
    })
  },

  /** An unknown task's page; then, on the task list, waits (args.ready_file written) for
   * the test to remove this token and restart the host, and reads the login page the
   * dashboard goes back to. */
  async revoked() {
    return withPage({}, async (page) => {
      await login(page)
      await page.goto(`${args.url}/tasks/${args.unknown}`)
      await page.waitForSelector('[data-test=task-error]')
      const unknown = await text(page, '[data-test=task-error]')
      const controls = await page.locator('[data-test^=act-]').count()
      await shot(page, 'unknown-task')
      await page.goto(`${args.url}/tasks`)
      await page.waitForSelector('[data-test=task-table]')
      writeFileSync(args.ready_file, 'ready')
      await page.waitForURL(/\/login/, { timeout: LONG })
      await page.waitForSelector('[data-test=expired]')
      const expired = await text(page, '[data-test=expired]')
      const stored = await page.evaluate(() => Object.keys(localStorage).filter((k) => localStorage.getItem(k)?.length > 20))
      await shot(page, 'logged-out')
      return { unknown, controls, expired, url: page.url(), stored }
    })
  },

  async themes() {
    const background = (page) => page.evaluate(() => getComputedStyle(document.body).backgroundColor)
    const dark = await withPage({ colorScheme: 'dark' }, async (page) => {
      await login(page)
      await page.goto(`${args.url}/nodes`)
      await page.locator(`[data-node="${args.node}"]`).waitFor()
      await shot(page, 'dark-nodes')
      return { body: await background(page), board: await text(page, `[data-node="${args.node}"]`) }
    })
    const light = await withPage({ colorScheme: 'light' }, async (page) => {
      await login(page)
      await shot(page, 'light-overview')
      return { body: await background(page) }
    })
    return { dark, light }
  },

  /** The overview, nodes and tasks pages (with task args.task listed) in a phone's
   * viewport: how wide each page is against the window (wider: the page scrolls
   * sideways), and where the nav's links end. */
  async phone() {
    const width = (page) => page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      window: window.innerWidth,
      nav: Math.max(...[...document.querySelectorAll('.top nav a')].map((a) => a.getBoundingClientRect().right)),
    }))
    return withPage({ viewport: { width: 390, height: 844 } }, async (page) => {
      await login(page)
      await page.waitForFunction(() => /\b[1-9]\d* online/.test(document.querySelector('[data-test=node-counts]')?.textContent || ''))
      const overview = await width(page)
      await shot(page, 'phone-overview')
      await page.goto(`${args.url}/nodes`)
      await page.locator(`[data-node="${args.node}"]`).waitFor()
      await page.locator(`[data-node="${args.gpu_node}"]`).waitFor()
      const nodes = await width(page)
      await shot(page, 'phone-nodes')
      await page.goto(`${args.url}/tasks`)
      await page.locator(`[data-task="${args.task}"]`).waitFor()
      const tasks = await width(page)
      await shot(page, 'phone-tasks')
      return { overview, nodes, tasks }
    })
  },

  /** For bench/dashboard_live.py: milliseconds from navigation to an interactive task list
   * (event stream live, a full page of rows, the row count shown), then from typing a
   * search to the filtered table. */
  async tasks_timing() {
    return withPage({}, async (page) => {
      await login(page)
      const tti = []
      const search = []
      for (let i = 0; i < (args.runs || 10); i += 1) {
        await page.goto('about:blank')
        const t = Date.now()
        await page.goto(`${args.url}/tasks`)
        await page.waitForFunction(() => document.querySelector('[data-test=connection].live') && document.querySelectorAll('[data-task]').length >= 50, null, { timeout: LONG })
        tti.push(Date.now() - t)
        const s = Date.now()
        await page.fill('[data-test=task-search]', args.find)
        await page.waitForFunction(() => document.querySelectorAll('[data-task]').length === 1, null, { timeout: LONG })
        search.push(Date.now() - s)
      }
      await shot(page, 'tasks-timed')
      return { tti, search, found: await text(page, '[data-task]') }
    })
  },

  /** For bench/dashboard_live.py: a pending task killed with a request made in the page,
   * to its row saying killed (a MutationObserver's time; the page's own controls are not
   * used, so only the event stream can change the row). Milliseconds from the request
   * sent, and from its answer received. */
  async event_latency() {
    return withPage({}, async (page) => {
      await login(page)
      await page.goto(`${args.url}/tasks?state=pending`)
      await page.waitForFunction(() => document.querySelectorAll('[data-task]').length >= 10, null, { timeout: LONG })
      const fromRequest = []
      const fromAnswer = []
      for (let i = 0; i < (args.samples || 60); i += 1) {
        const id = await page.locator('[data-task]').first().getAttribute('data-task')
        const r = await page.evaluate(async ({ id, token }) => {
          const row = document.querySelector(`[data-task="${id}"]`)
          const seen = new Promise((resolve) => {
            const done = () => {
              const el = document.querySelector(`[data-task="${id}"] [data-test=task-state]`)
              return !el || el.textContent.trim() === 'killed'
            }
            const mo = new MutationObserver(() => {
              if (done()) { mo.disconnect(); resolve(performance.now()) }
            })
            mo.observe(row.parentNode, { subtree: true, childList: true, characterData: true })
          })
          const sent = performance.now()
          const answer = await fetch(`/api/v1/tasks/${id}/kill`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } })
          const answered = performance.now()
          if (!answer.ok) throw new Error(`kill ${id}: ${answer.status}`)
          const shown = await Promise.race([seen, new Promise((_, no) => setTimeout(() => no(new Error(`task ${id} not shown killed in 10 s`)), 10_000))])
          return { request: shown - sent, answer: shown - answered }
        }, { id, token: args.token })
        fromRequest.push(r.request)
        fromAnswer.push(r.answer)
        await page.waitForFunction((i) => !document.querySelector(`[data-task="${i}"]`), id)
      }
      await shot(page, 'events-timed')
      return { fromRequest, fromAnswer }
    })
  },

  /** For bench/dashboard_live.py: keystroke to echo in the web terminal of args.task, which
   * runs `stty raw -echo; exec cat` (every byte comes back once). Start: the key's keydown
   * in the page; end: the MutationObserver that sees one more "k" in xterm's rows. Then the
   * baseline: keys on the same page echoed by the bare WebSocket server at args.echo. */
  async terminal_keys() {
    return withPage({}, async (page) => {
      // every WebSocket message's arrival time, to split the round trip in two
      await page.addInitScript(() => {
        window.__socketTimes = []
        window.__sendTimes = []
        const Native = window.WebSocket
        window.WebSocket = class extends Native {
          constructor(...a) {
            super(...a)
            this.addEventListener('message', () => window.__socketTimes.push(performance.now()))
          }
          send(data) {
            window.__sendTimes.push(performance.now())
            return super.send(data)
          }
        }
      })
      await login(page)
      await page.goto(`${args.url}/terminal/tasks/${args.task}`)
      await page.waitForFunction(() => document.querySelector('[data-test=term-status]')?.textContent.trim() === 'connected', null, { timeout: LONG })
      await page.click('[data-test=terminal]')
      await page.keyboard.type('clear; stty raw -echo; exec cat\n')
      await page.waitForFunction(() => !(document.querySelector('.xterm-rows')?.innerText || '').includes('stty'), null, { timeout: LONG })
      await page.keyboard.type('r\r')
      await page.waitForFunction(() => /r/.test(document.querySelector('.xterm-rows')?.innerText || ''), null, { timeout: LONG })
      await page.evaluate(() => {
        const rows = document.querySelector('.xterm-rows')
        const count = () => (rows.textContent.match(/k/g) || []).length
        const base = count()
        window.__keys = { starts: [], ends: [] }
        window.__keysEnds = window.__keys.ends
        // waiters are woken by the observers themselves: polling the page (on every
        // animation frame, say) would make it draw frames that delay what is measured
        window.__waiters = []
        window.__wake = () => window.__waiters.splice(0).forEach((w) => w())
        window.__until = (done) => new Promise((ok, fail) => {
          const late = setTimeout(() => fail(new Error('no echo within 10 s')), 10_000)
          const w = () => (done() ? (clearTimeout(late), ok()) : window.__waiters.push(w))
          w()
        })
        document.addEventListener('keydown', (e) => { if (e.key === 'k') window.__keys.starts.push(performance.now()) }, true)
        new MutationObserver(() => {
          const now = performance.now()
          const n = count() - base
          while (window.__keys.ends.length < n) window.__keys.ends.push(now)
          window.__wake()
        }).observe(rows, { subtree: true, childList: true, characterData: true })
      })
      const n = args.samples || 200
      const until = (want, key) => page.evaluate(([w, k]) => window.__until(() => window[k].length >= w), [want, key])
      for (let i = 0; i < n; i += 1) {
        await page.keyboard.press('k')
        await until(i + 1, '__keysEnds')
      }
      const { starts, ends, socket, sent } = await page.evaluate(() => ({ ...window.__keys, socket: window.__socketTimes, sent: window.__sendTimes }))
      check(starts.length === n && ends.length === n, `${starts.length} keys, ${ends.length} echoes`)
      await shot(page, 'terminal-timed')
      // the first message on any socket after the key: the echo's bytes (the events socket
      // is quiet on an idle cluster; a message of its own would only make this smaller)
      const received = starts.map((s, i) => (socket.find((t) => t >= s && t <= ends[i]) ?? ends[i]) - s)
      const sentAt = starts.map((s, i) => (sent.find((t) => t >= s && t <= ends[i]) ?? ends[i]) - s)
      // baseline, same page and same keys: a byte sent on the key to a bare WebSocket echo
      // server on loopback, and the time until it is back (no Kawa on that path)
      const echo = await page.evaluate(async (url) => {
        const ws = new WebSocket(url)
        ws.binaryType = 'arraybuffer'
        await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail })
        window.__echo = []
        let start = 0
        ws.onmessage = () => { window.__echo.push(performance.now() - start); window.__wake() }
        document.addEventListener('keydown', (e) => {
          if (e.key === 'j') { start = performance.now(); ws.send(new Uint8Array([106])) }
        }, true)
      }, args.echo)
      for (let i = 0; i < n; i += 1) {
        await page.keyboard.press('j')
        await until(i + 1, '__echo')
      }
      const bare = await page.evaluate(() => window.__echo)
      check(echo === undefined && bare.length === n, `${bare.length} bare echoes`)
      // the same bare echo sent from a timer, with no key: what the socket alone costs
      // when the browser is not handling input (it runs the tasks that follow an input
      // event after the next frame it draws)
      const idle = await page.evaluate(async ([url, count]) => {
        const ws = new WebSocket(url)
        ws.binaryType = 'arraybuffer'
        await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail })
        const times = []
        for (let i = 0; i < count; i += 1) {
          const start = performance.now()
          await new Promise((ok) => { ws.onmessage = ok; ws.send(new Uint8Array([105])) })
          times.push(performance.now() - start)
          await new Promise((ok) => setTimeout(ok, 5))
        }
        ws.close()
        return times
      }, [args.echo, n])
      return { rtt: starts.map((s, i) => ends[i] - s), received, sent: sentAt, bare, idle }
    })
  },

  /** For bench/dashboard_load.py: milliseconds from navigation to a live overview. */
  async overview_timing() {
    return withPage({}, async (page) => {
      await login(page)
      const live = () => page.waitForFunction(() => document.querySelector('[data-test=connection].live') && /\b\d+ online/.test(document.querySelector('[data-test=node-counts]')?.textContent || ''))
      const app = []
      const baseline = []
      for (let i = 0; i < (args.runs || 10); i += 1) {
        await page.goto('about:blank')
        let t = Date.now()
        await page.goto(`${args.url}/api/v1/health`)
        baseline.push(Date.now() - t)
        await page.goto('about:blank')
        t = Date.now()
        await page.goto(`${args.url}/`)
        await live()
        app.push(Date.now() - t)
      }
      await shot(page, 'overview-timed')
      return { app, baseline }
    })
  },
}

const name = process.argv[2]
if (!scenarios[name]) {
  console.error(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(', ')}`)
  process.exit(2)
}
try {
  const result = await scenarios[name]()
  console.log(JSON.stringify(result))
} catch (exc) {
  console.error(`${name}: ${exc.stack || exc}`)
  process.exit(1)
}
