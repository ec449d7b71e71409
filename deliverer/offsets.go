package deliverer

// ticket is one consumed record's place in its partition's tracker.
type ticket struct {
	offset int64
	done   bool
}

// tracker follows the records of one topic-partition from consumption to
// finish. Records finish out of order (lanes run concurrently); the
// committable offset is the lowest unfinished one, so every record below
// it is finished.
type tracker struct {
	tickets   []*ticket // ascending offsets; tickets[0] is unfinished
	next      int64     // offset after the last record added; -1: none yet
	committed int64     // last offset committed (guarded by commitMu)
}

func newTracker() *tracker { return &tracker{next: -1, committed: -1} }

func (t *tracker) add(offset int64) *ticket {
	m := &ticket{offset: offset}
	t.tickets = append(t.tickets, m)
	t.next = offset + 1
	return m
}

func (t *tracker) finish(m *ticket) {
	m.done = true
	for len(t.tickets) > 0 && t.tickets[0].done {
		t.tickets[0] = nil
		t.tickets = t.tickets[1:]
	}
}

// commitPoint is the offset to commit: the lowest unfinished record, or the
// one after the last record when all are finished.
func (t *tracker) commitPoint() (int64, bool) {
	if len(t.tickets) > 0 {
		return t.tickets[0].offset, true
	}
	return t.next, t.next >= 0
}
