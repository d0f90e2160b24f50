package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// Large bodies live in segment files beside the database: append-only
// files in the directory named by SegmentDirSuffix, each written by the
// writer goroutine from its start to at most Options.SegmentSize. A body
// is appended (no sync) while its delivery runs; the writer syncs the
// segment once per batch, before the batch is made durable (the log
// record or the commit), so whatever a durable record points at is on
// disk. The database keeps where each body is (blob_locs) and how much
// of each segment is still referenced (segments); a segment none of
// whose bodies is referenced any more is removed once no reader that
// could still see an old reference is running.
//
// Why: a 64 KiB body committed through bbolt costs scattered page
// writes and two syncs per commit; appended to a segment it is one
// sequential write, and the delivery can be acknowledged from the
// write-ahead log with the small records only (docs/BENCHMARKS.md).

// SegmentDirSuffix names the directory of body segments beside the file.
const SegmentDirSuffix = ".bodies"

const (
	defaultSegmentMin  = 16 << 10
	defaultSegmentSize = 256 << 20
	segmentFileSuffix  = ".seg"
	// segHeaderSize: a segment starts with a header naming the database
	// and its own number (segments numbered from meta seg_header_from
	// on; older ones have none), so that a segment of another database
	// is never read as this one's. Bodies follow it.
	segHeaderSize  = 64
	segHeaderMagic = "ABOXSEG1"
)

var keySegHeaderFrom = []byte("seg_header_from")

func segHeader(id []byte, seg uint32) []byte {
	h := make([]byte, segHeaderSize)
	copy(h, segHeaderMagic)
	copy(h[8:], id)
	binary.BigEndian.PutUint32(h[24:], seg)
	binary.BigEndian.PutUint32(h[28:], crc32.Checksum(h[:28], walCRC))
	return h
}

// segHeaderState is what a segment's header says.
type segHeaderState int

const (
	segHeaderOK      segHeaderState = iota
	segHeaderForeign                // whole, but another database's or another number's
	segHeaderBad                    // damaged or missing
)

func checkSegHeader(f *os.File, id []byte, seg uint32) (segHeaderState, []byte) {
	h := make([]byte, segHeaderSize)
	if _, err := f.ReadAt(h, 0); err != nil {
		return segHeaderBad, nil
	}
	if string(h[:8]) != segHeaderMagic || crc32.Checksum(h[:28], walCRC) != binary.BigEndian.Uint32(h[28:]) {
		return segHeaderBad, nil
	}
	if !bytes.Equal(h[8:24], id) || binary.BigEndian.Uint32(h[24:]) != seg {
		return segHeaderForeign, bytes.Clone(h[8:24])
	}
	return segHeaderOK, nil
}

// blobLoc is where a segment body is: blob_locs' value.
type blobLoc struct {
	seg  uint32
	off  int64
	size int64
}

func (l blobLoc) encode() []byte {
	b := make([]byte, 0, 20)
	b = binary.BigEndian.AppendUint32(b, l.seg)
	b = binary.BigEndian.AppendUint64(b, uint64(l.off))
	return binary.BigEndian.AppendUint64(b, uint64(l.size))
}

func decodeLoc(v []byte) (blobLoc, bool) {
	if len(v) != 20 {
		return blobLoc{}, false
	}
	l := blobLoc{seg: binary.BigEndian.Uint32(v), off: int64(binary.BigEndian.Uint64(v[4:])), size: int64(binary.BigEndian.Uint64(v[12:]))}
	return l, l.off >= 0 && l.size >= 0
}

// segStats is a segment's entry in the segments bucket: how many bodies
// and bytes in it are referenced.
type segStats struct{ bodies, bytes int64 }

func segKey(seg uint32) []byte { return binary.BigEndian.AppendUint32(nil, seg) }

func decodeSegStats(v []byte) segStats {
	if len(v) != 16 {
		return segStats{}
	}
	return segStats{int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))}
}

func (st segStats) encode() []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(st.bodies)), uint64(st.bytes))
}

// segments owns the segment directory. The maps are guarded by mu; the
// fields from active on belong to the writer goroutine.
type segments struct {
	dir      string
	log      *slog.Logger
	min      int   // bodies this large or larger go to segments
	maxSize  int64 // a segment is closed for appends past this
	readOnly bool

	mu     sync.RWMutex
	files  map[uint32]*os.File // open for reading (and the active one for writing)
	maps   map[uint32][]byte   // mapped for reading, past the end for one still growing
	gone   map[uint32]bool     // removed: a reader of an old reference gets an error
	sizes  map[uint32]int64    // file sizes of the segments closed for appends
	sparse map[uint32]bool     // closed segments less than half referenced
	kick   chan struct{}       // wakes the compactor (buffered, 1)

	readers readerEpochs

	// id is the database's identity, headerFrom the first segment
	// number with a header (set by tidy). damaged holds segments whose
	// header is unreadable: their bodies answer ErrCorrupt (guarded by
	// mu). activeSeg and activeEnd bound reads of the segment still
	// being appended to (the writer moves them).
	id         []byte
	headerFrom uint32
	damaged    map[uint32]bool
	activeSeg  atomic.Uint32
	activeEnd  atomic.Int64

	// For SegmentStats.
	nFiles, nBytes           atomic.Int64
	compactions, compactedTo atomic.Uint64

	active   uint32 // 0: none yet (ids start at 1)
	activeF  *os.File
	next     int64      // append offset in the active segment
	unsynced []*os.File // written since the last sync
	pending  []uint32   // emptied by the batches since the last commit
}

func segmentName(seg uint32) string { return fmt.Sprintf("%08d%s", seg, segmentFileSuffix) }

// parseSegmentName reads the names segmentName writes, and only those:
// every use of a listed segment opens segmentName(n), so "7.seg" taken
// for segment 7 would name a file that is not there.
func parseSegmentName(name string) (uint32, bool) {
	num, ok := strings.CutSuffix(name, segmentFileSuffix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(num, 10, 32)
	return uint32(n), err == nil && n > 0 && segmentName(uint32(n)) == name
}

func openSegments(dir string, opts Options) *segments {
	g := &segments{dir: dir, log: opts.Logger, min: opts.SegmentMin, maxSize: opts.SegmentSize, readOnly: opts.ReadOnly,
		files: map[uint32]*os.File{}, maps: map[uint32][]byte{}, gone: map[uint32]bool{}, sizes: map[uint32]int64{},
		sparse: map[uint32]bool{}, kick: make(chan struct{}, 1), damaged: map[uint32]bool{}}
	if g.min == 0 {
		g.min = defaultSegmentMin
	}
	if g.maxSize <= 0 {
		g.maxSize = defaultSegmentSize
	}
	g.readers.open = map[uint64]int{}
	g.readers.remove = g.remove
	return g
}

// takes says whether a body of n bytes goes to a segment.
func (g *segments) takes(n int) bool { return g.min > 0 && n >= g.min && !g.readOnly }

// list returns the segment files present, in order.
func (g *segments) list() ([]uint32, error) {
	entries, err := os.ReadDir(g.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: body segments: %w", err)
	}
	var out []uint32
	for _, e := range entries {
		if seg, ok := parseSegmentName(e.Name()); ok {
			out = append(out, seg)
		}
	}
	slices.Sort(out)
	return out, nil
}

// tidy runs at Open, after the write-ahead log is applied: files that no
// body refers to (written for deliveries a crash left unacknowledged, or
// emptied before the crash) are removed, and appends start in a new
// segment numbered after every one there was. A segment whose header
// names another database stops the Open (it is never removed or read);
// one whose header is damaged costs only its own bodies.
func (g *segments) tidy(tx *bolt.Tx) error {
	segs, err := g.list()
	if err != nil {
		return err
	}
	meta := tx.Bucket(bMeta)
	g.id = bytes.Clone(meta.Get(keyDBID))
	if v := meta.Get(keySegHeaderFrom); len(v) == 4 {
		g.headerFrom = binary.BigEndian.Uint32(v)
	} else {
		g.headerFrom = math.MaxUint32 // a read-only open of a file from before headers
	}
	last := uint32(0)
	if v := meta.Get(keyLastSegment); len(v) == 4 {
		last = binary.BigEndian.Uint32(v)
	}
	stats := tx.Bucket(bSegments)
	for _, seg := range segs {
		last = max(last, seg)
		name := filepath.Join(g.dir, segmentName(seg))
		st := decodeSegStats(stats.Get(segKey(seg)))
		hs := segHeaderOK
		if seg >= g.headerFrom {
			f, err := os.Open(name)
			if err != nil {
				return fmt.Errorf("store: body segments: %w", err)
			}
			var other []byte
			hs, other = checkSegHeader(f, g.id, seg)
			f.Close()
			if hs == segHeaderForeign {
				return fmt.Errorf("store: the body segment %s belongs to another database (%x) or another place, not %x: it is never read or removed here; move it away (or restore with `abox restore`): %w",
					name, other, g.id, ErrForeignFiles)
			}
		}
		if g.readOnly {
			continue
		}
		if st.bodies == 0 {
			if err := os.Remove(name); err != nil {
				return fmt.Errorf("store: body segments: %w", err)
			}
			continue
		}
		if hs == segHeaderBad {
			g.damaged[seg] = true
			g.log.Error("store: a body segment's header is damaged; its messages cannot be read (abox check names them)", "segment", name, "bodies", st.bodies)
		}
		fi, err := os.Stat(name)
		if err != nil {
			return fmt.Errorf("store: body segments: %w", err)
		}
		g.closedSize(seg, fi.Size(), st)
		g.nFiles.Add(1)
		g.nBytes.Add(fi.Size())
	}
	g.active = last // the next append opens last+1
	return nil
}

var keyLastSegment = []byte("last_segment")

// append writes body at the end of the active segment (opening a new one
// when it is full or there is none) and records where it went in t.
func (g *segments) append(t *txn, id uint64, body []byte) error {
	if g.activeF == nil || g.next > 0 && g.next+int64(len(body)) > g.maxSize {
		if err := g.roll(t); err != nil {
			return err
		}
	}
	if _, err := g.activeF.WriteAt(body, g.next); err != nil {
		return fmt.Errorf("store: writing a body segment: %w", err)
	}
	loc := blobLoc{seg: g.active, off: g.next, size: int64(len(body))}
	g.next += int64(len(body))
	g.activeEnd.Store(g.next)
	g.nBytes.Add(loc.size)
	if len(g.unsynced) == 0 || g.unsynced[len(g.unsynced)-1] != g.activeF {
		g.unsynced = append(g.unsynced, g.activeF)
	}
	if err := t.put(bBlobLocs, u64(id), loc.encode(), appendFill); err != nil {
		return err
	}
	if err := t.put(bSegBlobs, segBlobKey(g.active, id), nil, appendFill); err != nil {
		return err
	}
	return g.count(t, g.active, 1, loc.size)
}

func segBlobKey(seg uint32, id uint64) []byte {
	return binary.BigEndian.AppendUint64(segKey(seg), id)
}

// closedSize records the size of a segment closed for appends, and
// whether it is sparse.
func (g *segments) closedSize(seg uint32, size int64, st segStats) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sizes[seg] = size
	g.noteSparse(seg, st)
}

// noteSparse marks a closed segment less than half of whose bytes are
// referenced, for the compactor. Called with mu held.
func (g *segments) noteSparse(seg uint32, st segStats) {
	size, closed := g.sizes[seg]
	if !closed || g.sparse[seg] || st.bodies == 0 || st.bytes*2 >= size {
		return
	}
	g.sparse[seg] = true
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// count adds to a segment's referenced bodies and bytes.
func (g *segments) count(t *txn, seg uint32, bodies, bytes int64) error {
	b := t.tx.Bucket(bSegments)
	st := decodeSegStats(b.Get(segKey(seg)))
	st.bodies += bodies
	st.bytes += bytes
	if st.bodies > 0 {
		if bodies < 0 {
			g.mu.Lock()
			g.noteSparse(seg, st)
			g.mu.Unlock()
		}
		return t.put(bSegments, segKey(seg), st.encode(), 0)
	}
	// Bodies are dropped by requests that commit (never logged ones,
	// whose log has no deletions).
	if t.log != nil {
		return errors.New("store: a logged request dropped a body")
	}
	if seg != g.active {
		g.pending = append(g.pending, seg)
	}
	return b.Delete(segKey(seg))
}

// roll starts the next segment. The file and its directory entry are
// synced before anything can refer to it.
func (g *segments) roll(t *txn) error {
	if err := os.MkdirAll(g.dir, 0o700); err != nil {
		return fmt.Errorf("store: body segments: %w", err)
	}
	seg := g.active + 1
	f, err := os.OpenFile(filepath.Join(g.dir, segmentName(seg)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("store: body segments: %w", err)
	}
	// The header is synced with the first body, before anything refers
	// to the segment.
	if _, err := f.WriteAt(segHeader(g.id, seg), 0); err != nil {
		f.Close()
		return fmt.Errorf("store: body segments: %w", err)
	}
	if err := syncDir(g.dir); err != nil {
		f.Close()
		return fmt.Errorf("store: body segments: %w", err)
	}
	if err := t.put(bMeta, keyLastSegment, binary.BigEndian.AppendUint32(nil, seg), 0); err != nil {
		f.Close()
		return err
	}
	old := g.active
	g.mu.Lock()
	g.files[seg] = f
	if g.activeF != nil {
		g.sizes[old] = g.next
		g.noteSparse(old, decodeSegStats(t.tx.Bucket(bSegments).Get(segKey(old))))
	}
	g.mu.Unlock()
	g.active, g.activeF, g.next = seg, f, segHeaderSize
	g.activeEnd.Store(g.next)
	g.activeSeg.Store(seg)
	g.nFiles.Add(1)
	g.nBytes.Add(segHeaderSize)
	// A segment closed with nothing left in it goes now.
	if old != 0 && decodeSegStats(t.tx.Bucket(bSegments).Get(segKey(old))).bodies == 0 {
		g.pending = append(g.pending, old)
	}
	return nil
}

// sync makes every body appended so far durable (the writer, before a
// batch's record or commit).
func (g *segments) sync() error {
	for len(g.unsynced) > 0 {
		if err := fdatasync(g.unsynced[0]); err != nil {
			return fmt.Errorf("store: syncing a body segment: %w", err)
		}
		g.unsynced = g.unsynced[1:]
	}
	g.unsynced = nil
	return nil
}

// discard forgets the segments emptied by batches that were rolled back.
func (g *segments) discard() { g.pending = g.pending[:0] }

// committed hands the segments emptied by committed batches to the
// readers' epochs: each is removed once the readers that started before
// this commit (and may hold an old reference) are done.
func (g *segments) committed() {
	for _, seg := range g.pending {
		if seg != g.active {
			g.readers.doom(seg)
		}
	}
	g.pending = g.pending[:0]
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (g *segments) remove(seg uint32) {
	g.mu.Lock()
	f, m, size := g.files[seg], g.maps[seg], g.sizes[seg]
	delete(g.files, seg)
	delete(g.maps, seg)
	delete(g.sizes, seg)
	delete(g.sparse, seg)
	g.gone[seg] = true
	g.mu.Unlock()
	if m != nil {
		syscall.Munmap(m)
	}
	if f != nil {
		f.Close()
	}
	if os.Remove(filepath.Join(g.dir, segmentName(seg))) == nil {
		g.nFiles.Add(-1)
		g.nBytes.Add(-size)
	}
}

// SegmentStats describes the body segments.
type SegmentStats struct {
	Files, Bytes int64 // segment files and the bytes in them
	// Compactions counts segments compacted, CompactedBytes the bytes
	// of bodies they moved.
	Compactions, CompactedBytes uint64
}

// SegmentStats returns the segments' figures (since Open for the
// counters).
func (s *Store) SegmentStats() SegmentStats {
	g := s.blobs.segs
	return SegmentStats{Files: g.nFiles.Load(), Bytes: g.nBytes.Load(), Compactions: g.compactions.Load(), CompactedBytes: g.compactedTo.Load()}
}

// view returns the body at loc from the segment's mapping, valid while
// the reader's epoch is held (ok false: read it with read instead). A
// segment is mapped once, to at least SegmentSize, so appends after the
// mapping are inside it; pages written with pwrite are the mapping's
// pages (one page cache).
func (g *segments) view(loc blobLoc) (data []byte, ok bool) {
	g.mu.RLock()
	m := g.maps[loc.seg]
	g.mu.RUnlock()
	if m == nil {
		f, err := g.file(loc.seg)
		if err != nil {
			return nil, false
		}
		fi, err := f.Stat()
		if err != nil {
			return nil, false
		}
		g.mu.Lock()
		if m = g.maps[loc.seg]; m == nil && !g.gone[loc.seg] {
			m, err = syscall.Mmap(int(f.Fd()), 0, int(max(g.maxSize, fi.Size())), syscall.PROT_READ, syscall.MAP_SHARED)
			if err == nil {
				g.maps[loc.seg] = m
			}
		}
		g.mu.Unlock()
		if m == nil {
			return nil, false
		}
	}
	// Bounded by what the file holds, not by the mapping (which runs
	// past the file's end: touching that is SIGBUS).
	if loc.off < 0 || loc.size < 0 || loc.off+loc.size > int64(len(m)) || loc.off+loc.size > g.limit(loc.seg) {
		return nil, false
	}
	return m[loc.off : loc.off+loc.size : loc.off+loc.size], true
}

// limit is how many bytes of a segment its file is known to hold: the
// writer's end for the active one, the size found when it was closed
// (or at Open) for the others.
func (g *segments) limit(seg uint32) int64 {
	if seg == g.activeSeg.Load() {
		return g.activeEnd.Load()
	}
	g.mu.RLock()
	n, ok := g.sizes[seg]
	g.mu.RUnlock()
	if !ok {
		return -1
	}
	return n
}

// resize reads the sizes of the segment files again, after a read of
// a mapping faulted (a file was cut short while the server ran).
func (g *segments) resize() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for seg := range g.sizes {
		if f := g.files[seg]; f != nil {
			if fi, err := f.Stat(); err == nil && fi.Size() < g.sizes[seg] {
				g.sizes[seg] = fi.Size()
			}
		}
	}
}

func (g *segments) isDamaged(seg uint32) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.damaged[seg]
}

// file returns a segment's file, opening it for reading the first time.
func (g *segments) file(seg uint32) (*os.File, error) {
	g.mu.RLock()
	f, gone := g.files[seg], g.gone[seg]
	g.mu.RUnlock()
	if f != nil {
		return f, nil
	}
	if gone {
		return nil, fmt.Errorf("store: body segment %d was removed: %w", seg, ErrCorrupt)
	}
	if g.isDamaged(seg) {
		return nil, fmt.Errorf("store: body segment %d has a damaged header: %w", seg, ErrCorrupt)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.files[seg]; f != nil {
		return f, nil
	}
	f, err := os.Open(filepath.Join(g.dir, segmentName(seg)))
	if err != nil {
		return nil, fmt.Errorf("store: body segment %d: %w (%w)", seg, ErrCorrupt, err)
	}
	g.files[seg] = f
	return f, nil
}

// read reads the body at loc into buf (grown as needed).
func (g *segments) read(loc blobLoc, buf []byte) ([]byte, error) {
	f, err := g.file(loc.seg)
	if err != nil {
		return nil, err
	}
	if loc.off < 0 || loc.size < 0 || loc.size > 1<<40 {
		return nil, fmt.Errorf("body segment %d: location %d+%d: %w", loc.seg, loc.off, loc.size, ErrCorrupt)
	}
	buf = slices.Grow(buf[:0], int(loc.size))[:loc.size]
	if _, err := f.ReadAt(buf, loc.off); err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("body segment %d ends before %d+%d: %w", loc.seg, loc.off, loc.size, ErrCorrupt)
		}
		return nil, fmt.Errorf("store: reading a body: %w", err)
	}
	return buf, nil
}

// close closes every file (Close, after the writer has stopped).
func (g *segments) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for seg, m := range g.maps {
		syscall.Munmap(m)
		delete(g.maps, seg)
	}
	for seg, f := range g.files {
		f.Close()
		delete(g.files, seg)
	}
}

// readerEpochs holds back the removal of a segment until every read
// transaction that started before the commit that emptied it has ended
// (such a reader may still see a reference to it).
type readerEpochs struct {
	mu     sync.Mutex
	epoch  uint64
	open   map[uint64]int // epoch -> read transactions running
	doomed []doomedSeg
	remove func(uint32)
}

type doomedSeg struct {
	seg   uint32
	epoch uint64 // readers of this epoch or earlier may see it
}

func (r *readerEpochs) enter() uint64 {
	r.mu.Lock()
	e := r.epoch
	r.open[e]++
	r.mu.Unlock()
	return e
}

func (r *readerEpochs) leave(e uint64) {
	r.mu.Lock()
	if r.open[e]--; r.open[e] <= 0 {
		delete(r.open, e)
	}
	ready := r.ready()
	r.mu.Unlock()
	for _, seg := range ready {
		r.remove(seg)
	}
}

func (r *readerEpochs) doom(seg uint32) {
	r.mu.Lock()
	r.doomed = append(r.doomed, doomedSeg{seg, r.epoch})
	r.epoch++
	ready := r.ready()
	r.mu.Unlock()
	for _, seg := range ready {
		r.remove(seg)
	}
}

// ready takes out the doomed segments no running reader can see.
func (r *readerEpochs) ready() []uint32 {
	if len(r.doomed) == 0 {
		return nil
	}
	oldest := r.epoch
	for e := range r.open {
		oldest = min(oldest, e)
	}
	var out []uint32
	keep := r.doomed[:0]
	for _, d := range r.doomed {
		if d.epoch < oldest {
			out = append(out, d.seg)
		} else {
			keep = append(keep, d)
		}
	}
	r.doomed = keep
	return out
}
