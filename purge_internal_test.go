package distlock

import (
	"context"
	"errors"
	"testing"
	"time"
)

// purgingDriver counts the purges it is asked for.
type purgingDriver struct {
	*hookDriver
	ages chan time.Duration
}

func (d *purgingDriver) Purge(_ context.Context, olderThan time.Duration) (int64, error) {
	d.ages <- olderThan
	return 0, nil
}

func TestAutoPurgeRunsAtStart(t *testing.T) {
	d := &purgingDriver{hookDriver: newHookDriver(), ages: make(chan time.Duration, 4)}
	c, err := NewClient(d, WithLogger(discardLogger()), WithAutoPurge(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case age := <-d.ages:
		if age != time.Hour {
			t.Errorf("purged with age %v, want 1h", age)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("WithAutoPurge did not purge at start")
	}
}

func TestPurgeRefusesYoungAges(t *testing.T) {
	d := &purgingDriver{hookDriver: newHookDriver(), ages: make(chan time.Duration, 4)}
	if _, err := NewClient(d, WithAutoPurge(time.Second)); !errors.Is(err, ErrInvalid) {
		t.Errorf("WithAutoPurge(1s) = %v, want ErrInvalid", err)
	}
	c := hookClient(t, d.hookDriver)
	defer c.Close()
	if _, err := c.Purge(t.Context(), time.Hour); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Purge on a store without records = %v, want errors.ErrUnsupported", err)
	}
	if _, err := c.Purge(t.Context(), time.Second); !errors.Is(err, ErrInvalid) {
		t.Errorf("Purge(1s) = %v, want ErrInvalid", err)
	}
}
