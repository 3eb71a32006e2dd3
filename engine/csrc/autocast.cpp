// bf16 autocast for the trainer, on CPU as well as CUDA: tch's `autocast` switches CUDA's
// only (and at fp16). The functions are declared here instead of including
// <ATen/autocast_mode.h>, which pulls in all of ATen and takes 30+ s to compile; the c10
// headers give the exact enum types, so the mangled names match libtorch_cpu's.
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

namespace at::autocast {
bool is_autocast_enabled(c10::DeviceType device_type);
void set_autocast_enabled(c10::DeviceType device_type, bool enabled);
c10::ScalarType get_autocast_dtype(c10::DeviceType device_type);
void set_autocast_dtype(c10::DeviceType device_type, c10::ScalarType dtype);
int increment_nesting();
int decrement_nesting();
void clear_cache();
}  // namespace at::autocast

namespace {
c10::DeviceType device_type(int cuda) {
  return cuda ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
}
}  // namespace

// Turns bf16 autocast on for this thread and device type. Writes what was set before into
// `was_enabled` and `was_dtype` (restored by rolekd_autocast_exit). 0 on success, -1 if
// libtorch threw.
extern "C" int rolekd_autocast_enter(int cuda, int* was_enabled, int* was_dtype) {
  try {
    c10::DeviceType d = device_type(cuda);
    *was_enabled = at::autocast::is_autocast_enabled(d) ? 1 : 0;
    *was_dtype = static_cast<int>(at::autocast::get_autocast_dtype(d));
    at::autocast::set_autocast_dtype(d, c10::ScalarType::BFloat16);
    at::autocast::set_autocast_enabled(d, true);
    at::autocast::increment_nesting();
    return 0;
  } catch (...) {
    return -1;
  }
}

// Leaves the region: the weight casts cached inside it are dropped when the outermost
// region ends, and the previous state comes back.
extern "C" int rolekd_autocast_exit(int cuda, int was_enabled, int was_dtype) {
  try {
    c10::DeviceType d = device_type(cuda);
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(d, was_enabled != 0);
    at::autocast::set_autocast_dtype(d, static_cast<c10::ScalarType>(was_dtype));
    return 0;
  } catch (...) {
    return -1;
  }
}

// Whether autocast is on for this thread and device type (1, 0; -1 if libtorch threw).
extern "C" int rolekd_autocast_enabled(int cuda) {
  try {
    return at::autocast::is_autocast_enabled(device_type(cuda)) ? 1 : 0;
  } catch (...) {
    return -1;
  }
}
