// CI only (.ci/cxx-pch): the headers most of RocksDB's ~340 sources include, parsed once into a
// precompiled header instead of once per source file. Every header here has include guards, so a
// source that includes one again gets nothing new; the order is RocksDB's usual one (standard
// library, public headers, then internal ones). The list comes from counting the #include lines
// of rocksdb_lib_sources.txt.
#include <cstdint>
#include <algorithm>
#include <atomic>
#include <cassert>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>
#include "port/port.h"
#include "rocksdb/env.h"
#include "rocksdb/options.h"
#include "rocksdb/db.h"
#include "rocksdb/slice.h"
#include "rocksdb/status.h"
#include "rocksdb/table.h"
#include "rocksdb/convenience.h"
#include "rocksdb/file_system.h"
#include "rocksdb/utilities/options_type.h"
#include "rocksdb/utilities/object_registry.h"
#include "util/string_util.h"
#include "util/coding.h"
#include "logging/logging.h"
#include "test_util/sync_point.h"
#include "db/dbformat.h"
#include "db/db_impl/db_impl.h"
#include "db/column_family.h"
#include "db/version_set.h"
#include "monitoring/perf_context_imp.h"
#include "file/filename.h"
#include "table/format.h"
#include "options/options_helper.h"
#include "file/writable_file_writer.h"
#include "file/random_access_file_reader.h"
#include "monitoring/statistics_impl.h"
#include "util/mutexlock.h"
#include "table/block_based/block_based_table_reader.h"
