package rediswire

import (
	"fmt"
	"strings"
	"sync"

	"github.com/distlock/distlock"
)

// ReservedPrefix begins every Redis key distlock writes besides the lock
// key itself (the record, the queue; see NamesFor). A lock name that
// begins with it is refused: a lock on another lock's record would break
// that lock's grants. Other names under
// "distlock:" ("distlock:jobs") are the user's.
const ReservedPrefix = "distlock:{"

// CheckLock refuses a lock name (prefix+key) in distlock's own key space,
// with an error wrapping distlock.ErrInvalid that names the problem.
func CheckLock(name string) error {
	if strings.HasPrefix(name, ReservedPrefix) {
		return fmt.Errorf("%w: lock name %q begins with %q, which distlock keeps for its own keys (fence records, waiter queues)",
			distlock.ErrInvalid, name, ReservedPrefix)
	}
	return nil
}

// CheckPrefix refuses a key prefix under which every lock name would be
// refused by CheckLock.
func CheckPrefix(prefix string) error {
	if strings.HasPrefix(prefix, ReservedPrefix) {
		return fmt.Errorf("%w: prefix %q begins with %q, which distlock keeps for its own keys", distlock.ErrInvalid, prefix, ReservedPrefix)
	}
	return nil
}

// Names are the Redis keys and the channel one lock name uses. Every key
// hashes to the same Redis Cluster slot as Lock, so one script can touch them
// all on a cluster.
type Names struct {
	// Lock is the lock key itself: prefix+key. Its value is the holder's
	// token, set with a PX expiry (the scheme redsync and bsm/redislock use).
	Lock string
	// Record is the lock name's record, a string "<fence> <token> <owner>":
	// the last fence made for the name and the grant it was made for. It
	// expires FenceKeep after the lock's TTL (from the last grant or
	// renewal) and a release leaves it: it is the fence counter, and,
	// while Lock holds the same token, the holder's metadata.
	Record string
	// Queue is a list of waiter tokens, oldest first.
	Queue string
	// Waiters is a hash from waiter token to
	// "expiryMs|ttlMs|channel|owner".
	Waiters string
	// Channel is the default pub/sub channel of a hand-over ("<fence>
	// <token>"), used for waiters whose entry names no channel of its own.
	Channel string
}

// NamesFor returns the names of key under prefix. The auxiliary names are
//
//	distlock:{T}:r:<Lock>   record: last fence, and the holder's token and owner
//	distlock:{T}:q:<Lock>   waiter queue
//	distlock:{T}:w:<Lock>   waiter entries
//	distlock:{T}:c:<Lock>   channel
//
// where T is the tag of Lock's slot: the smallest non-negative decimal
// integer whose hash slot equals Slot(Lock). The first '{' of each name is
// the one before T, so the name hashes by T whatever braces Lock contains.
func NamesFor(prefix, key string) Names {
	lock := prefix + key
	base := "distlock:{" + SlotTag(Slot(lock)) + "}:"
	return Names{
		Lock:    lock,
		Record:  base + "r:" + lock,
		Queue:   base + "q:" + lock,
		Waiters: base + "w:" + lock,
		Channel: base + "c:" + lock,
	}
}

// SlotCount is the number of hash slots of Redis Cluster.
const SlotCount = 16384

// Slot returns the Redis Cluster hash slot of key: CRC16 (XMODEM) of the
// key's hash tag (the text between the first '{' and the first '}' after it,
// if that text is not empty) or of the whole key, modulo 16384.
func Slot(key string) int {
	if i := indexByte(key, '{'); i >= 0 {
		if j := indexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key)) % SlotCount
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

var (
	tagsOnce sync.Once
	tags     [SlotCount]string
)

// SlotTag returns the smallest non-negative decimal integer, as text, whose
// hash slot is slot. The table is computed once (a few milliseconds).
func SlotTag(slot int) string {
	tagsOnce.Do(func() {
		left := SlotCount
		var buf [20]byte
		for n := 0; left > 0; n++ {
			b := appendUint(buf[:0], uint64(n))
			s := int(crc16Bytes(b)) % SlotCount
			if tags[s] == "" {
				tags[s] = string(b)
				left--
			}
		}
	})
	return tags[slot]
}

func appendUint(b []byte, n uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), as Redis
// Cluster uses.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^s[i]]
	}
	return crc
}

func crc16Bytes(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^c]
	}
	return crc
}

var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()
