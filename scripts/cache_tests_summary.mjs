// Counts a run of http-tests/cache-tests the way cache-tests.fyi does, with the suite's own
// determineTestResult (dependencies honoured), and prints one row per suite and the totals.
// "Passed of N" counts the required and optimal tests that ran (the `check` tests, which only
// record behaviour, are counted apart as Y / N, and not at all when they could not run); "required
// failures" are the ⛔️ results. In each row, run = passed + required + optimal + other.
//
// Usage: node scripts/cache_tests_summary.mjs CHECKOUT RESULTS.json [NAME]
// SHOW_FAILURES=0 in the environment prints the tables only.
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const [checkout, resultsFile, name = path.basename(resultsFile, '.json')] = process.argv.slice(2)
if (!checkout || !resultsFile) {
  console.error('usage: node scripts/cache_tests_summary.mjs CHECKOUT RESULTS.json [NAME]')
  process.exit(2)
}
const load = file => import(pathToFileURL(path.join(checkout, file)).href)
const suites = (await load('tests/index.mjs')).default
const { determineTestResult, resultTypes: types } = await load('test-engine/lib/results.mjs')
const results = JSON.parse(fs.readFileSync(resultsFile, 'utf8'))

const kindOf = test => test.kind || 'required'
const other = [types.dependency_fail, types.setup_fail, types.harness_fail, types.retry]
const rows = []
const failures = []
const total = { run: 0, passed: 0, required: 0, optimal: 0, other: 0, yes: 0, no: 0 }
for (const suite of suites) {
  const row = { suite: suite.id, run: 0, passed: 0, required: 0, optimal: 0, other: 0, yes: 0, no: 0 }
  for (const test of suite.tests) {
    const result = determineTestResult(suites, test.id, results)
    if (result === types.untested) continue
    if (kindOf(test) === 'check') {
      if (result === types.yes) row.yes++
      else if (result === types.no) row.no++
      continue
    }
    row.run++
    if (result === types.pass) {
      row.passed++
      continue
    }
    if (result === types.fail) row.required++
    else if (result === types.optional_fail) row.optimal++
    else if (other.includes(result)) row.other++
    const detail = Array.isArray(results[test.id]) ? results[test.id].slice(0, 2).join(': ') : ''
    failures.push({ suite: suite.id, id: test.id, kind: kindOf(test), symbol: result[2], detail })
  }
  rows.push(row)
  for (const key of Object.keys(total)) total[key] += row[key]
}

const columns = ['suite', 'run', 'passed', 'required', 'optimal', 'other', 'yes', 'no']
const heads = ['suite', 'run', 'passed', 'failed: required ⛔️', 'optimal ⚠️', 'other ⚪️🔹⁉️↻', 'check Y', 'check N']
const table = [heads, ...rows.map(r => columns.map(c => String(r[c]))), columns.map(c => c === 'suite' ? 'total' : String(total[c]))]
const widths = heads.map((_, i) => Math.max(...table.map(line => [...line[i]].length)))
const line = cells => '| ' + cells.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join(' | ') + ' |'
// The same tests judged on their own assertions, as if every dependency had passed: not the
// published score, but it shows which rules fail behind a failed dependency.
let ownPassed = 0
let ownRequired = 0
for (const suite of suites) {
  for (const test of suite.tests) {
    if (kindOf(test) === 'check') continue
    const result = determineTestResult(suites, test.id, results, false)
    if (result === types.pass) ownPassed++
    if (result === types.fail) ownRequired++
  }
}
console.log(`\n${name}: passed ${total.passed} of ${total.run}, required failures ${total.required}`)
console.log(`(judged without dependencies: passed ${ownPassed}, required failures ${ownRequired})\n`)
console.log(line(table[0]))
console.log('|' + widths.map((w, i) => i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':').join('|') + '|')
for (const cells of table.slice(1)) console.log(line(cells))

// The tests a ⚪️ result waits on: the failed tests at the bottom of its dependency chain.
const testById = new Map(suites.flatMap(suite => suite.tests.map(test => [test.id, test])))
function roots (id, seen = new Set()) {
  const found = new Set()
  for (const dep of testById.get(id).depends_on || []) {
    if (seen.has(dep)) continue
    seen.add(dep)
    const result = determineTestResult(suites, dep, results)
    if (result === types.dependency_fail) roots(dep, seen).forEach(r => found.add(r))
    else if (result !== types.pass && result !== types.yes) found.add(dep)
  }
  return found
}
const blocked = new Map()
for (const f of failures) {
  if (f.symbol !== types.dependency_fail[2]) continue
  for (const root of roots(f.id)) blocked.set(root, (blocked.get(root) || 0) + 1)
}

if (process.env.SHOW_FAILURES !== '0' && blocked.size) {
  console.log('\n⚪️ results by the failed test they depend on (a test may wait on several):')
  for (const [root, count] of [...blocked].sort((a, b) => b[1] - a[1])) {
    const result = determineTestResult(suites, root, results)
    const detail = Array.isArray(results[root]) ? ` — ${results[root].slice(0, 2).join(': ')}` : ''
    console.log(`${String(count).padStart(4)} wait on ${result[2]} ${root}${detail}`)
  }
}

if (process.env.SHOW_FAILURES !== '0' && failures.length) {
  console.log('\nnot passed (⛔️ required, ⚠️ optimal, ⚪️ a dependency failed, 🔹 setup, ⁉️ harness, ↻ retried):')
  for (const f of failures) {
    console.log(`${f.symbol} ${f.kind.padEnd(8)} ${f.suite}/${f.id}${f.detail ? ` — ${f.detail}` : ''}`)
  }
}
