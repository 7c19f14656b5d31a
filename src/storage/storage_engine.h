#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "content/local_video_content_service.h"
#include "storage/checksum_store.h"
#include "storage/env.h"
#include "storage/quarantine.h"
#include "storage/sha256.h"
#include "storage/stored_file.h"

namespace streamgrid::storage {

// Counts for a node's health report.
struct StorageUsage {
  uint64_t files = 0;
  // Sum of the stored files' sizes.
  uint64_t bytes_used = 0;
  // Of the file system holding the data directory.
  uint64_t free_bytes = 0;
  uint64_t total_bytes = 0;
};

struct StorageEngineOptions {
  // Where file operations go (tests inject faults); Env::Default() when null.
  // Must outlive the engine.
  Env* env = nullptr;
};

// A storage node's files, their checksums and its quarantine, in one data
// directory:
//
//   DATA/content/<video_id>/<name>     the data
//   DATA/checksums/<video_id>/<name>   its SHA-256 and per-block SHA-256
//                                      (ChecksumStore), bound to the data
//                                      file's inode, size and mtime
//   DATA/quarantine/                   damaged copies and their log (Quarantine)
//
// Every file operation goes through an Env (storage/env.h).
//
// Commit order. An upload is written to a temp file beside its target
// (content/<video_id>/.tmp-up-<name>.<random>), hashed whole and per 1 MiB
// block while written, and committed only if the hash (and the announced size)
// match: the temp file is fsynced (and its directory), then the checksum
// record of the temp file (same inode, size and mtime as the final file will
// have) is written durably, then the temp file is renamed over the target and
// the directory fsynced. A delete renames the data to
// content/<video_id>/.tmp-del-<name>.<random> (directory fsynced), removes the
// record durably, then unlinks the renamed data. So after a crash, Open()
// tells every window apart from damage: an upload temp file whose inode the
// record names finishes its commit (renamed in), any other upload temp file is
// removed; a delete temp file whose inode the record names finishes the delete
// (record removed). Everything else is as committed. Open() hashes nothing
// (except once, to upgrade a store written by an earlier version, which
// recomputes missing or stale records and adds block checksums).
//
// Damage. At run time the record is the truth: a data file whose inode, size
// or mtime differs from its record (DAMAGE_WRONG_SIZE when the size differs,
// else DAMAGE_CORRUPT), a record without data (DAMAGE_MISSING), data without a
// readable record (DAMAGE_UNVERIFIABLE), or a block whose bytes do not hash to
// the recorded block checksum (DAMAGE_CORRUPT, even with size and mtime
// unchanged) makes the read fail with DATA_LOSS before any byte of the bad
// block is handed out, and moves the copy to the quarantine: the file is
// NOT_FOUND from then on (until a new version is stored). Listings skip
// damaged files without quarantining them (the scrubber or a read does).
//
// Thread-safe. Reads and writes of a video are serialized against commits and
// deletes of the same video by a striped reader/writer lock, so a reader always
// gets a file and the checksums of that same version. One engine (one process)
// per data directory. Every call validates ids and names (INVALID_ARGUMENT).
class StorageEngine {
 public:
  class Upload;
  class Reader;

  // Listing pages hold this many entries unless asked for fewer.
  static constexpr size_t kMaxPageSize = 1000;
  // A listing page examines this many files at most by default.
  static constexpr size_t kDefaultListScanLimit = 100'000;

  // Opens (creating if needed) the store in `data_dir` and recovers it from a
  // crash as described above.
  static absl::StatusOr<std::unique_ptr<StorageEngine>> Open(const std::filesystem::path& data_dir,
                                                             StorageEngineOptions options = {});

  StorageEngine(const StorageEngine&) = delete;
  StorageEngine& operator=(const StorageEngine&) = delete;
  ~StorageEngine();

  const std::filesystem::path& data_dir() const { return data_dir_; }

  // Starts writing `video_id/name`. With `expected_size`, more data than that
  // fails the upload (DATA_LOSS) and a size above the free space is refused up
  // front (RESOURCE_EXHAUSTED). Nothing is visible before Upload::Commit().
  // With `sender_block_digests`, the upload hashes only the blocks, and its
  // Commit() must be given the sender's digest of every block (see there).
  // The file's blocks are checksummed (and recorded) with `block_algorithm`:
  // the sender's, when it sends digests. The engine must outlive the upload.
  absl::StatusOr<std::unique_ptr<Upload>> StartUpload(
      std::string_view video_id, std::string_view name,
      std::optional<uint64_t> expected_size = std::nullopt, bool sender_block_digests = false,
      BlockAlgorithm block_algorithm = kDefaultBlockAlgorithm);

  // Reads `length` bytes (to the end when nullopt) from `offset`, every byte
  // verified first (see Reader). NOT_FOUND if the file does not exist;
  // OUT_OF_RANGE if `offset` is past its end; DATA_LOSS if the copy is
  // damaged (it is quarantined). The reader keeps reading the version it
  // opened even if it is replaced meanwhile.
  absl::StatusOr<std::unique_ptr<Reader>> OpenReader(std::string_view video_id,
                                                     std::string_view name, uint64_t offset = 0,
                                                     std::optional<uint64_t> length = std::nullopt);

  // The file's description from its record, or NOT_FOUND; DATA_LOSS (and the
  // copy quarantined) if the data file is not the one the record describes.
  absl::StatusOr<StoredFile> Stat(std::string_view video_id, std::string_view name);

  // Removes one file; NOT_FOUND if it does not exist.
  absl::Status Delete(std::string_view video_id, std::string_view name);

  // Removes every file of a video and returns how many there were (0 is OK).
  absl::StatusOr<uint64_t> DeleteVideo(std::string_view video_id);

  // One page of a listing in (video_id, name) order, as `options` describes:
  // up to its page_size files (capped at kMaxPageSize; 0 means the cap), only
  // video_id's when that is not empty, only those of the given partitions when
  // there are any, starting after page_token (empty for the first page).
  // Damaged files are left out.
  //
  // The page examines at most `scan_limit` files (at least 1) past the token,
  // matching or not. When it stops at that limit or at a full page with files
  // left to examine, next_page_token resumes right after the last file it
  // examined; so a filtered page may be short, or empty, with a token, and a
  // token does not promise another match. The token is empty once every file
  // has been examined. Files added or removed between pages may or may not
  // show; the others are listed exactly once.
  //
  // INVALID_ARGUMENT for a bad video id, a malformed token or one from a
  // listing of another video, partition_bits outside 1..kMaxListPartitionBits
  // while partitions is not empty, or a partition >= 2^partition_bits. Each
  // page costs time proportional to the number of videos plus the files of the
  // videos it touches, not to the whole store.
  absl::StatusOr<StoredFilePage> List(const ListOptions& options,
                                      size_t scan_limit = kDefaultListScanLimit);

  // Unfiltered List() of `video_id` (all videos when empty).
  absl::StatusOr<StoredFilePage> List(std::string_view video_id, std::string_view page_token,
                                      size_t page_size = kMaxPageSize);

  // File count and bytes stored (kept up to date in memory), plus the file
  // system's free and total space.
  absl::StatusOr<StorageUsage> Usage() const;

  // For the scrubber: every video id with data or checksum records, sorted.
  absl::StatusOr<std::vector<std::string>> ScrubVideoIds();
  // For the scrubber: every name of `video_id` with data or a record, sorted.
  absl::StatusOr<std::vector<std::string>> ScrubNames(std::string_view video_id);

  // What ScrubFile found.
  struct ScrubResult {
    uint64_t bytes_checked = 0;
    // The copy was damaged and has been quarantined.
    bool damaged = false;
  };
  // Reads and verifies the whole of `video_id/name` (every block and the
  // whole-file SHA-256), calling `pace(n)` before reading each n bytes; a
  // damaged copy is quarantined (found by "scrub"). NOT_FOUND when there is
  // neither data nor record (deleted meanwhile); CANCELLED when `pace`
  // returns false.
  absl::StatusOr<ScrubResult> ScrubFile(std::string_view video_id, std::string_view name,
                                        const std::function<bool(uint64_t)>& pace);

  // The damaged copies found so far.
  const Quarantine& quarantine() const { return *quarantine_; }

 private:
  friend class Reader;
  struct Inspection;

  StorageEngine(std::filesystem::path data_dir, Env& env,
                std::unique_ptr<LocalVideoContentService> content, ChecksumStore checksums,
                std::unique_ptr<Quarantine> quarantine);

  absl::Status Recover();
  absl::Status UpgradeLegacyStore();
  std::shared_mutex& LockFor(std::string_view video_id);
  std::filesystem::path DataPath(std::string_view video_id, std::string_view name) const;
  // Compares the record of `video_id/name` with the data file (`opened` when
  // the caller has it open, else stat'ed). Caller holds the video's lock.
  absl::StatusOr<Inspection> Inspect(std::string_view video_id, std::string_view name,
                                     const std::optional<FileStat>& opened);
  absl::StatusOr<std::unique_ptr<Reader>> OpenVerified(std::string_view video_id,
                                                       std::string_view name, uint64_t offset,
                                                       std::optional<uint64_t> length,
                                                       const char* found_by);
  // Moves a damaged copy to the quarantine, unless it was replaced meanwhile:
  // `data_inode` is the inode of the damaged data (nullopt for missing data).
  // Returns the DATA_LOSS status to answer with.
  absl::Status QuarantineCopy(std::string_view video_id, std::string_view name, Damage damage,
                              const std::string& expected_sha256,
                              std::optional<uint64_t> data_inode, const char* found_by,
                              std::string_view detail);
  absl::StatusOr<StoredFile> CommitUpload(Upload& upload, const std::string& sha256);
  // Delete() with the video's lock held; whether data was removed.
  absl::StatusOr<bool> DeleteLocked(std::string_view video_id, std::string_view name);
  void Account(std::optional<uint64_t> size_before, std::optional<uint64_t> size_after);

  const std::filesystem::path data_dir_;
  Env& env_;
  const std::unique_ptr<LocalVideoContentService> content_;
  const ChecksumStore checksums_;
  const std::unique_ptr<Quarantine> quarantine_;
  std::array<std::shared_mutex, 64> locks_;
  std::atomic<uint64_t> files_{0};
  std::atomic<uint64_t> bytes_{0};
};

// The etag of a data file (the format of LocalVideoContentService's).
std::string EtagOf(const FileStat& stat);

// A file being written; see StorageEngine::StartUpload. Destroying it without
// a successful Commit() removes every trace of it.
class StorageEngine::Upload {
 public:
  ~Upload();

  // Writes the next bytes. After an error the upload is abandoned and unusable.
  absl::Status Append(std::span<const char> data);

  // Checks the data against `expected_sha256` (64 hex digits, either case;
  // INVALID_ARGUMENT otherwise) and the expected size, then makes the file
  // durable and visible, replacing any earlier version. DATA_LOSS on a mismatch,
  // leaving nothing behind; on an I/O error the earlier version (if any) stays
  // as it was. Call at most once.
  absl::StatusOr<StoredFile> Commit(std::string_view expected_sha256);

  // Commit() of an upload started with sender_block_digests: the data is not
  // hashed whole; instead each kChecksumBlockBytes block (the last one may be
  // shorter) must hash to the sender's digest in `sender_blocks` (one per
  // block, in order, of the upload's block algorithm), and `expected_sha256`
  // is then recorded as the whole file's digest (vouched for by every block
  // matching; with SHA-256 blocks a file of at most one block is checked
  // against it, as its block digest is the whole file's). DATA_LOSS on any
  // mismatch or a wrong number of digests, leaving nothing behind. Without
  // sender_block_digests `sender_blocks` is ignored and this is Commit().
  absl::StatusOr<StoredFile> Commit(std::string_view expected_sha256,
                                    std::span<const BlockDigest> sender_blocks);

  uint64_t bytes_written() const { return written_; }

  // The digest (of block_algorithm()) of each complete block received so far
  // (and, after Commit(), of the last one): for a caller that wants to know
  // which block differed from the sender's after a DATA_LOSS.
  std::span<const BlockDigest> block_digests() const { return blocks_; }
  BlockAlgorithm block_algorithm() const { return block_hasher_.algorithm(); }

 private:
  friend class StorageEngine;
  Upload(StorageEngine& engine, std::string video_id, std::string name,
         std::optional<uint64_t> expected_size, bool sender_block_digests,
         BlockAlgorithm block_algorithm, std::filesystem::path temp,
         std::unique_ptr<WritableFile> file);
  void Abandon();
  // DATA_LOSS unless `sender_blocks` are exactly the digests of blocks_.
  absl::Status CheckSenderBlocks(std::span<const BlockDigest> sender_blocks) const;

  StorageEngine& engine_;
  const std::string video_id_;
  const std::string name_;
  const std::optional<uint64_t> expected_size_;
  // The whole-file digest is the sender's, checked through its block digests.
  const bool sender_block_digests_;
  const std::filesystem::path temp_;
  std::unique_ptr<WritableFile> file_;  // null once abandoned or committed
  bool temp_exists_ = true;
  Sha256 hasher_;  // unused with sender_block_digests_
  BlockHasher block_hasher_;
  uint64_t block_filled_ = 0;
  std::vector<BlockDigest> blocks_;
  uint64_t written_ = 0;
};

// A byte range of a stored file, read sequentially. It reads the whole
// kChecksumBlockBytes blocks the range overlaps, one at a time, and checks
// each against its recorded checksum before handing out any byte of it (at
// most one block in memory).
class StorageEngine::Reader {
 public:
  // Fills up to `buffer.size()` bytes; returns 0 at the end of the range.
  // DATA_LOSS when the next block is damaged (the copy is quarantined); no
  // byte of that block is returned, now or later.
  absl::StatusOr<size_t> Read(std::span<char> buffer);

  // The whole file's description (not just the range's).
  const StoredFile& file() const { return file_; }

  // The recorded digest of each kChecksumBlockBytes block of the whole file,
  // in order, of block_algorithm(): one for a file of one block (with SHA-256
  // blocks, the whole file's), none for an empty file. Read() checks every
  // block it hands out against its digest.
  std::vector<BlockDigest> BlockDigests() const;
  BlockAlgorithm block_algorithm() const { return record_.block_algorithm; }

  // From now on, Read() hands out the stored bytes without hashing them: for
  // a receiver that checks every block against BlockDigests() itself (a node
  // pulling a copy). A file shorter than its record is still caught (and
  // quarantined); damaged bytes are the receiver's to catch, and a verified
  // read of that block (any other reader) then quarantines the copy.
  void SkipBlockVerification() { verify_blocks_ = false; }

 private:
  friend class StorageEngine;
  // Read() without verification: straight from the file into `buffer`.
  absl::StatusOr<size_t> ReadUnverified(std::span<char> buffer);

  Reader(StorageEngine& engine, std::unique_ptr<ReadableFile> data, StoredFile file,
         ChecksumRecord record, uint64_t inode, uint64_t offset, uint64_t end,
         const char* found_by);
  absl::Status LoadBlock(uint64_t index);

  StorageEngine& engine_;
  std::unique_ptr<ReadableFile> data_;
  const StoredFile file_;
  const ChecksumRecord record_;
  const uint64_t inode_;
  const char* const found_by_;
  uint64_t position_;
  const uint64_t end_;
  // The verified block in memory: bytes [block_start_, block_start_ + block_.size()).
  std::vector<char> block_;
  uint64_t block_start_ = 0;
  bool has_block_ = false;
  bool verify_blocks_ = true;
  absl::Status failed_;
};

}  // namespace streamgrid::storage
