package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/cebm/cebm/index"
	"github.com/cebm/cebm/internal/atomicfile"
)

// The embedded log's layout, little-endian:
//
//	header  "CEBMLOG1", dim uint32, digestN uint32, digest, crc uint32
//	records length uint32, crc uint32 (CRC-32C of the payload), payload
//
// The payload is a record (record.go). The header is written once, with
// the file, atomically; records are appended and fsynced one per Append.
// The snapshot has the same layout, written whole (temp + rename).
const (
	logMagic     = "CEBMLOG1"
	maxRecordLen = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DefaultFoldBytes is the log size past which FileItems folds the log into
// its snapshot.
const DefaultFoldBytes = 64 << 20

// FilePaths are the snapshot and log of the added items of the index named
// key in dir.
func FilePaths(dir, key string) (snapshot, log string) {
	return filepath.Join(dir, "items-"+key+".snap"), filepath.Join(dir, "items-"+key+".log")
}

// FileItems is the embedded store of added items: a snapshot of the items
// added up to some point and an append-only log of those added since.
// Append writes and fsyncs a record before it adds the items to the index.
// Open replays the snapshot and then the log; a torn last record (a crash
// mid-write) is cut off with a warning. When the log passes FoldBytes it
// is folded into a new snapshot in the background; queries are never
// blocked, appends only while the few records written during the fold are
// copied.
type FileItems struct {
	ix        *index.Index
	base      int // index id of the first added item: the reference set's size
	snapPath  string
	logPath   string
	foldBytes int64
	log       *slog.Logger
	images    images

	mu      sync.Mutex
	f       *os.File
	size    int64 // bytes of whole records and header in the log
	hdrLen  int64
	broken  error // set when the log could not be restored after a failed write
	folding bool
	folds   sync.WaitGroup
}

// FileOptions tune OpenFileItems.
type FileOptions struct {
	FoldBytes int64        // 0: DefaultFoldBytes
	Log       *slog.Logger // nil: discard
}

// OpenFileItems adds the items stored at snapPath and logPath (FilePaths)
// to ix, whose present items are the reference set, and returns the store
// that appends to them. Missing files are created.
func OpenFileItems(ix *index.Index, snapPath, logPath string, opt FileOptions) (*FileItems, error) {
	if opt.FoldBytes <= 0 {
		opt.FoldBytes = DefaultFoldBytes
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	s := &FileItems{ix: ix, base: ix.Len(), snapPath: snapPath, logPath: logPath, foldBytes: opt.FoldBytes, log: opt.Log}
	s.hdrLen = int64(len(s.header()))
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := s.loadSnapshot(); err != nil {
		return nil, err
	}
	if err := s.replay(); err != nil {
		return nil, err
	}
	return s, nil
}

// Base is the index id of the first added item.
func (s *FileItems) Base() int { return s.base }

// Pixels is added item id's image, if it was stored with one.
func (s *FileItems) Pixels(id int) ([]uint8, bool) { return s.images.get(id - s.base) }

// Tags is added item id's tags.
func (s *FileItems) Tags(id int) []string { return s.images.tagsOf(id - s.base) }

func (s *FileItems) header() []byte {
	d := s.ix.ModelDigest()
	h := []byte(logMagic)
	h = binary.LittleEndian.AppendUint32(h, uint32(s.ix.Dim()))
	h = binary.LittleEndian.AppendUint32(h, uint32(len(d)))
	h = append(h, d...)
	return binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, castagnoli))
}

// frame is a record's payload with its length and checksum.
func frame(payload []byte) []byte {
	b := binary.LittleEndian.AppendUint32(make([]byte, 0, 8+len(payload)), uint32(len(payload)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(payload, castagnoli))
	return append(b, payload...)
}

// apply adds a record's items to the index unless they are there already,
// or deletes a tombstone's items.
func (s *FileItems) apply(rec record) (bool, error) {
	if rec.deleted != nil {
		for _, id := range rec.deleted {
			if err := s.ix.Delete(id); err != nil {
				return false, fmt.Errorf("a tombstone deletes an item not yet added: %w", err)
			}
		}
		return true, nil
	}
	applied := s.ix.Len() - s.base
	switch {
	case rec.seq+len(rec.Labels) <= applied: // already in the snapshot
		return false, nil
	case rec.seq != applied:
		return false, fmt.Errorf("a record starts at added item %d, but %d are known: the snapshot %s is missing or older than the log", rec.seq, applied, s.snapPath)
	}
	if _, err := s.ix.Add(rec.Vecs, rec.Labels); err != nil {
		return false, err
	}
	s.images.add(rec.seq, rec.Batch)
	return true, nil
}

// readRecords applies the records of the file f after its header, and
// returns the offset after the last good one and, if reading stopped
// before the end, why.
func (s *FileItems) readRecords(f *os.File, path string) (off int64, records int, torn string, err error) {
	hdr := s.header()
	got := make([]byte, len(hdr))
	if _, err := io.ReadFull(f, got); err != nil || string(got) != string(hdr) {
		return 0, 0, "", fmt.Errorf("store: %s is not a log of this index (model %s, dimension %d)", path, s.ix.ModelDigest(), s.ix.Dim())
	}
	r := bufio.NewReaderSize(f, 1<<20)
	off = s.hdrLen
	for {
		payload, why := readFrame(r)
		if why == io.EOF {
			return off, records, "", nil
		}
		if why != nil {
			return off, records, why.Error(), nil
		}
		rec, err := decodeRecord(payload, s.ix.Dim())
		if err != nil {
			return off, records, err.Error(), nil
		}
		ok, err := s.apply(rec)
		if err != nil {
			return off, records, "", fmt.Errorf("store: %s at byte %d: %w", path, off, err)
		}
		if ok {
			records++
		}
		off += int64(8 + len(payload))
	}
}

// loadSnapshot adds the snapshot's items to the index. A missing snapshot
// is an empty one; a damaged one stops the start: it holds items that
// clients were told are stored.
func (s *FileItems) loadSnapshot() error {
	f, err := os.Open(s.snapPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	_, _, torn, err := s.readRecords(f, s.snapPath)
	if err == nil && torn != "" {
		err = fmt.Errorf("store: %s is damaged: %s", s.snapPath, torn)
	}
	if err != nil {
		return fmt.Errorf("%w (move it aside to start without the items it holds)", err)
	}
	s.log.Info("added items loaded", "snapshot", s.snapPath, "items", s.ix.Len()-s.base)
	return nil
}

// replay applies the log's records that the snapshot does not hold, cuts
// off a torn tail, and opens the log for appending (creating it if absent).
func (s *FileItems) replay() error {
	f, err := os.OpenFile(s.logPath, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		if err := atomicfile.WriteBytes(s.logPath, s.header()); err != nil {
			return fmt.Errorf("store: create log: %w", err)
		}
		f, err = os.OpenFile(s.logPath, os.O_RDWR, 0)
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	off, records, torn, err := s.readRecords(f, s.logPath)
	if err == nil {
		err = s.cutTail(f, off, torn)
	}
	if err == nil {
		_, err = f.Seek(off, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return err
	}
	s.f, s.size = f, off
	s.log.Info("log replayed", "log", s.logPath, "records", records, "added_items", s.ix.Len()-s.base)
	return nil
}

// cutTail truncates the log to off if anything follows it.
func (s *FileItems) cutTail(f *os.File, off int64, torn string) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if torn == "" && st.Size() == off {
		return nil
	}
	s.log.Warn("log has a torn tail (a crash during a write); cutting it off",
		"log", s.logPath, "at_byte", off, "bytes_cut", st.Size()-off, "reason", torn)
	if err := f.Truncate(off); err != nil {
		return fmt.Errorf("store: cut torn tail: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// readFrame reads one framed payload: io.EOF at a clean end, another error
// for a torn or corrupt frame.
func readFrame(r *bufio.Reader) ([]byte, error) {
	var fr [8]byte
	n, err := io.ReadFull(r, fr[:])
	if n == 0 && err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("frame header cut after %d bytes", n)
	}
	size := binary.LittleEndian.Uint32(fr[:])
	if size > maxRecordLen {
		return nil, fmt.Errorf("frame length %d is implausible", size)
	}
	payload := make([]byte, size)
	if n, err := io.ReadFull(r, payload); err != nil {
		return nil, fmt.Errorf("frame of %d bytes cut after %d", size, n)
	}
	if got, want := crc32.Checksum(payload, castagnoli), binary.LittleEndian.Uint32(fr[4:]); got != want {
		return nil, fmt.Errorf("frame checksum %08x, stored %08x", got, want)
	}
	return payload, nil
}

// Append writes the items to the log, fsyncs it, and adds them to the index.
func (s *FileItems) Append(_ context.Context, b Batch) (int, error) {
	if err := s.ix.Check(b.Vecs, b.Labels); err != nil {
		return 0, err
	}
	if err := b.check(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return 0, s.broken
	}
	seq := s.ix.Len() - s.base
	fr := frame((&record{seq: seq, Batch: b}).encode(s.ix.Dim()))
	if err := s.write(fr); err != nil {
		return 0, err
	}
	first, err := s.ix.Add(b.Vecs, b.Labels)
	if err != nil { // checked above: only a full index gets here
		return 0, err
	}
	s.images.add(seq, b)
	s.size += int64(len(fr))
	s.maybeFold()
	return first, nil
}

// write appends a framed record to the log and fsyncs it; on failure it
// takes the partial record back. Called with mu held.
func (s *FileItems) write(fr []byte) error {
	_, err := s.f.Write(fr)
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		// Take the partial record back, so that later records do not
		// follow a torn one; if even that fails, refuse further appends.
		if terr := s.f.Truncate(s.size); terr != nil {
			s.broken = fmt.Errorf("store: log %s cannot be written (%v) nor restored (%v); restart the server", s.logPath, err, terr)
		} else if _, serr := s.f.Seek(s.size, io.SeekStart); serr != nil {
			s.broken = fmt.Errorf("store: log %s: %v", s.logPath, serr)
		}
		return fmt.Errorf("store: append to %s: %w", s.logPath, err)
	}
	return nil
}

// Delete writes a tombstone for index item id to the log, fsyncs it, and
// deletes the item from the index.
func (s *FileItems) Delete(_ context.Context, id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return s.broken
	}
	if id < 0 || id >= s.ix.Len() {
		return fmt.Errorf("%w: %d", index.ErrID, id)
	}
	if s.ix.Deleted(id) {
		return nil
	}
	fr := frame(tombstone([]int{id}).encode(s.ix.Dim()))
	if err := s.write(fr); err != nil {
		return err
	}
	if err := s.ix.Delete(id); err != nil {
		return err
	}
	s.size += int64(len(fr))
	s.maybeFold()
	return nil
}

// maybeFold starts a fold in the background once the log has grown past
// FoldBytes. Called with mu held.
func (s *FileItems) maybeFold() {
	if s.size-s.hdrLen > s.foldBytes && !s.folding {
		s.folding = true
		s.folds.Add(1)
		go func() {
			defer s.folds.Done()
			if err := s.fold(); err != nil {
				s.log.Warn("log not folded; it keeps growing", "log", s.logPath, "err", err)
			}
		}()
	}
}

// Fold writes every added item into a new snapshot and drops the records
// it now holds from the log. Append starts it when the log grows past
// FoldBytes; it may be called at any time, and does nothing while a fold
// is running.
func (s *FileItems) Fold() error {
	s.mu.Lock()
	if s.folding {
		s.mu.Unlock()
		return nil
	}
	s.folding = true
	s.mu.Unlock()
	return s.fold()
}

// fold is Fold, once folding is set.
func (s *FileItems) fold() error {
	defer func() {
		s.mu.Lock()
		s.folding = false
		s.mu.Unlock()
	}()
	s.mu.Lock()
	if s.broken != nil {
		s.mu.Unlock()
		return s.broken
	}
	n, off := s.ix.Len(), s.size
	s.mu.Unlock()

	// Items never change once added, and a delete written after off is
	// in the log's tail, replayed again: the snapshot is written without
	// the lock.
	err := atomicfile.Write(s.snapPath, func(w io.Writer) error {
		if _, err := w.Write(s.header()); err != nil {
			return err
		}
		for _, rec := range s.images.records(s.ix, s.base, 0, n-s.base) {
			if _, err := w.Write(frame(rec.encode(s.ix.Dim()))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: fold: %w", err)
	}

	// The snapshot holds every record before off; keep those after it.
	s.mu.Lock()
	defer s.mu.Unlock()
	tail := make([]byte, s.size-off)
	if _, err := s.f.ReadAt(tail, off); err != nil {
		return fmt.Errorf("store: fold: %w", err)
	}
	if err := atomicfile.WriteBytes(s.logPath, append(s.header(), tail...)); err != nil {
		return fmt.Errorf("store: fold: %w", err)
	}
	f, err := os.OpenFile(s.logPath, os.O_RDWR, 0)
	if err == nil {
		_, err = f.Seek(0, io.SeekEnd)
	}
	if err != nil {
		s.broken = fmt.Errorf("store: reopen folded log: %w", err)
		return s.broken
	}
	s.f.Close()
	s.f, s.size = f, s.hdrLen+int64(len(tail))
	s.log.Info("log folded into snapshot", "snapshot", s.snapPath, "added_items", n-s.base, "log_bytes", s.size)
	return nil
}

// Close waits for a fold in progress and closes the log.
func (s *FileItems) Close() error {
	s.folds.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if s.broken == nil {
		s.broken = errors.New("store: closed")
	}
	return err
}
