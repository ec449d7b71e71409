package testenv

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hookstream/hookstream/topic"
)

// TestReadAllTransactions reads a partition that ends in an aborted
// transaction's marker: the committed records come back, the aborted one
// does not, and ReadAll returns without waiting for records that never come.
func TestReadAllTransactions(t *testing.T) {
	k := StartKafka(t)
	names := k.CreateTopics(t, "readall.", topic.Partitions{Events: 1, Deliveries: 1, Other: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	txn := k.Client(t, kgo.TransactionalID("readall-test"), kgo.DefaultProduceTopic(names.Events))
	plain := k.Client(t, kgo.DefaultProduceTopic(names.Events))
	for _, step := range []struct {
		value string
		txn   bool
		end   kgo.TransactionEndTry
	}{
		{"committed", true, kgo.TryCommit},
		{"plain", false, kgo.TryAbort},
		{"aborted", true, kgo.TryAbort},
	} {
		if !step.txn {
			if err := plain.ProduceSync(ctx, &kgo.Record{Value: []byte(step.value)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := txn.ProduceSync(ctx, &kgo.Record{Value: []byte(step.value)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := txn.EndTransaction(ctx, step.end); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, r := range k.ReadAll(t, names.Events) {
		got = append(got, string(r.Value))
	}
	if want := []string{"committed", "plain"}; !slices.Equal(got, want) {
		t.Errorf("ReadAll = %q, want %q", got, want)
	}
	if got := k.ReadAll(t, "readall.missing"); len(got) != 0 {
		t.Errorf("ReadAll of a missing topic = %d records, want none", len(got))
	}
}

func TestOutputLines(t *testing.T) {
	var o Output
	if got := o.Lines(); got != nil {
		t.Errorf("no output: %q", got)
	}
	_, _ = o.Write([]byte("one\ntwo\nthr"))
	if got := o.Lines(); !slices.Equal(got, []string{"one", "two"}) {
		t.Errorf("Lines = %q, want the two complete lines", got)
	}
	_, _ = o.Write([]byte("ee\n"))
	if got := o.Lines(); !slices.Equal(got, []string{"one", "two", "three"}) {
		t.Errorf("Lines = %q, want three lines", got)
	}
}

// TestReadAllAbortedLater reads a partition whose end offsets were listed
// while a transaction was open and which that transaction's abort then
// ends: ReadAll returns the committed records instead of waiting for
// aborted ones it never gets.
func TestReadAllAbortedLater(t *testing.T) {
	k := StartKafka(t)
	names := k.CreateTopics(t, "aborted.", topic.Partitions{Events: 1, Deliveries: 1, Other: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plain := k.Client(t, kgo.DefaultProduceTopic(names.Events))
	if err := plain.ProduceSync(ctx, &kgo.Record{Value: []byte("committed")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	txn := k.Client(t, kgo.TransactionalID("aborted-later"), kgo.DefaultProduceTopic(names.Events))
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, &kgo.Record{Value: []byte("aborted")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond) // after ReadAll listed the end offsets
		_ = txn.EndTransaction(ctx, kgo.TryAbort)
	}()
	var got []string
	for _, r := range k.ReadAll(t, names.Events) {
		got = append(got, string(r.Value))
	}
	if want := []string{"committed"}; !slices.Equal(got, want) {
		t.Errorf("ReadAll = %q, want %q", got, want)
	}
}

// TestRedisCluster starts a 3-master cluster: keys spread over every
// master, and FlushAll empties all of them.
func TestRedisCluster(t *testing.T) {
	c := StartRedisCluster(t, 3)
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if err := c.Client.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.Masters(t); n != 3 {
		t.Fatalf("keys on %d masters, want 3", n)
	}
	c.FlushAll(t)
	if n := c.Masters(t); n != 0 {
		t.Fatalf("after FlushAll, keys on %d masters, want none", n)
	}
}
