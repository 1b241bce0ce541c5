import { describe, expect, it } from 'vitest'
import { query } from '../../src/lib/api'
import { batchOf, filterTasks, taskQuery } from '../../src/lib/taskFilter'

const tasks = [
  { id: '3', state: 'running', owner: 'alice', node: 'a', batch_id: '7', command: ['python'] },
  { id: '2', state: 'completed', owner: 'bob', node: 'b', batch_id: '7', command: ['echo'] },
  { id: '1', state: 'failed', owner: 'alice', node: 'a', batch_id: '5', command: ['false'] },
]

describe('owner filter', () => {
  it('keeps the tasks of that owner only, blanks around the name ignored', () => {
    expect(filterTasks(tasks, { owner: 'alice' }).map((t) => t.id)).toEqual(['3', '1'])
    expect(filterTasks(tasks, { owner: ' bob ' }).map((t) => t.id)).toEqual(['2'])
    expect(filterTasks(tasks, { owner: 'ali' }).map((t) => t.id)).toEqual([])
    expect(filterTasks(tasks, { owner: '' }).map((t) => t.id)).toEqual(['3', '2', '1'])
    expect(filterTasks(tasks, { owner: 'alice', batch: '7' }).map((t) => t.id)).toEqual(['3'])
  })
})

describe('task query', () => {
  it('passes the owner and the other filters as the host names them', () => {
    const f = { state: 'running', node: 'a', batch: ' 7 ', owner: ' alice ', q: 'train' }
    expect(taskQuery(f, { before: '9', limit: 200 })).toEqual({
      before: '9', limit: 200, state: 'running', node: 'a', batch: '7', owner: 'alice', q: 'train',
    })
    expect(query(taskQuery({ owner: 'alice' }, { limit: 200 }))).toBe('?limit=200&owner=alice')
  })
  it('leaves empty filters out', () => {
    expect(taskQuery({ state: '', node: '', batch: '', owner: '  ', q: '' }, { limit: 200 })).toEqual({ limit: 200 })
    expect(taskQuery()).toEqual({})
  })
})

describe('batch of a filter', () => {
  it('is the batch id when it is digits, else none', () => {
    expect(batchOf({ batch: ' 7 ' })).toBe('7')
    expect(batchOf({ batch: '7a' })).toBe('')
    expect(batchOf({ batch: '' })).toBe('')
    expect(batchOf({})).toBe('')
  })
})
