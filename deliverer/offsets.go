package deliverer

// mark is one consumed record's place in its partition's tracker.
type mark struct {
	offset int64
	done   bool
}

// tracker follows the records of one topic-partition from consumption to
// finish. Records finish out of order (lanes run concurrently); the
// committable offset is the lowest unfinished one, so every record below
// it is finished.
type tracker struct {
	marks     []*mark // ascending offsets; marks[0] is unfinished
	next      int64   // offset after the last record added; -1: none yet
	committed int64   // last offset committed (guarded by commitMu)
}

func newTracker() *tracker { return &tracker{next: -1, committed: -1} }

func (t *tracker) add(offset int64) *mark {
	m := &mark{offset: offset}
	t.marks = append(t.marks, m)
	t.next = offset + 1
	return m
}

func (t *tracker) finish(m *mark) {
	m.done = true
	for len(t.marks) > 0 && t.marks[0].done {
		t.marks[0] = nil
		t.marks = t.marks[1:]
	}
}

// commitPoint is the offset to commit: the lowest unfinished record, or the
// one after the last record when all are finished.
func (t *tracker) commitPoint() (int64, bool) {
	if len(t.marks) > 0 {
		return t.marks[0].offset, true
	}
	return t.next, t.next >= 0
}
