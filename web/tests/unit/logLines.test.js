import { describe, expect, it } from 'vitest'
import { LogBuffer, filterLines, logFileName } from '../../src/lib/logLines'

describe('log filter', () => {
  const text = 'Epoch 1 loss 0.9\nwarning: slow disk\nEPOCH 2 loss 0.5\n'

  it('keeps the lines that contain the text, in any case', () => {
    expect(filterLines(text, 'epoch')).toBe('Epoch 1 loss 0.9\nEPOCH 2 loss 0.5')
    expect(filterLines(text, 'WARNING')).toBe('warning: slow disk')
  })
  it('keeps everything without a filter and nothing when no line matches', () => {
    expect(filterLines(text, '')).toBe(text)
    expect(filterLines(text, undefined)).toBe(text)
    expect(filterLines(text, 'nowhere')).toBe('')
  })
  it('matches text as it is, not as a pattern', () => {
    expect(filterLines('a.b\naxb\n[x] y\n', 'a.b')).toBe('a.b')
    expect(filterLines('a.b\naxb\n[x] y\n', '[x]')).toBe('[x] y')
  })
})

describe('log buffer', () => {
  it('shows output as it comes while not paused', () => {
    const b = new LogBuffer(100)
    b.add('one\n')
    b.add('two\n')
    b.add('')
    expect(b.shown).toBe('one\ntwo\n')
    expect(b.held).toBe('')
  })
  it('holds output back while paused and shows it all on resume', () => {
    const b = new LogBuffer(100)
    b.add('before\n')
    b.pause()
    b.add('during 1\n')
    b.add('during 2\n')
    expect(b.shown).toBe('before\n')
    expect(b.held).toBe('during 1\nduring 2\n')
    expect(b.all()).toBe('before\nduring 1\nduring 2\n')
    b.resume()
    expect(b.paused).toBe(false)
    expect(b.shown).toBe('before\nduring 1\nduring 2\n')
    expect(b.held).toBe('')
    b.add('after\n')
    expect(b.shown).toBe('before\nduring 1\nduring 2\nafter\n')
  })
  it('keeps only the last characters, held ones included', () => {
    const b = new LogBuffer(5)
    b.add('abcdefg')
    expect(b.shown).toBe('cdefg')
    b.pause()
    b.add('hijklmn')
    expect(b.held).toBe('jklmn')
    expect(b.all()).toBe('jklmn')
    b.resume()
    expect(b.shown).toBe('jklmn')
  })
  it('starts over empty and stays paused after clear', () => {
    const b = new LogBuffer(10)
    b.add('x')
    b.pause()
    b.add('y')
    b.clear()
    expect([b.shown, b.held, b.paused]).toEqual(['', '', true])
  })
})

describe('log file name', () => {
  it('names the task or batch and the stream', () => {
    expect(logFileName('task', '3826', 'stdout')).toBe('task-3826-stdout.log')
    expect(logFileName('batch', '77', 'stderr')).toBe('batch-77-stderr.log')
  })
})
