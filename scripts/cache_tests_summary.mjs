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
console.log(`\n${name}: passed ${total.passed} of ${total.run}, required failures ${total.required}\n`)
console.log(line(table[0]))
console.log('|' + widths.map((w, i) => i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':').join('|') + '|')
for (const cells of table.slice(1)) console.log(line(cells))

if (process.env.SHOW_FAILURES !== '0' && failures.length) {
  console.log('\nnot passed (⛔️ required, ⚠️ optimal, ⚪️ a dependency failed, 🔹 setup, ⁉️ harness, ↻ retried):')
  for (const f of failures) {
    console.log(`${f.symbol} ${f.kind.padEnd(8)} ${f.suite}/${f.id}${f.detail ? ` — ${f.detail}` : ''}`)
  }
}
