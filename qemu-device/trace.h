#include "trace/trace-hw_azihsm.h"
