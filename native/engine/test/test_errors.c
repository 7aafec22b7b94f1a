/* Error codes and NULL arguments. */
#include "runner.h"

#include <string.h>

TEST(errors) {
  CHECK(ee_abi_version() == EE_ABI_VERSION);
  CHECK(strcmp(ee_err_name(EE_EBUSY), "EBUSY") == 0);
  CHECK(strcmp(ee_strerror(EE_EADDR), "cannot resolve or bind the address") == 0);
  CHECK(strcmp(ee_err_name(EE_EADDRINUSE), "EADDRINUSE") == 0);
  CHECK(strcmp(ee_err_name(12345), "UNKNOWN") == 0);
  CHECK(strcmp(ee_strerror(12345), "unknown error") == 0);
  CHECK(ee_engine_start(NULL) == EE_EINVAL);
  CHECK(ee_engine_stop(NULL) == EE_EINVAL);
  CHECK(ee_engine_register(NULL, NULL, NULL, 1) == EE_EINVAL);
  CHECK(ee_engine_unregister(NULL, 1) == EE_EINVAL);
  CHECK(ee_engine_add_udp(NULL, "127.0.0.1", 0, NULL) == EE_EINVAL);
  CHECK(ee_engine_inject(NULL, EE_FAULT_LATE, 1) == EE_EINVAL);
  CHECK(ee_engine_stats(NULL, NULL) == EE_EINVAL);
  CHECK(ee_engine_generators_done(NULL) == EE_EINVAL);
}
