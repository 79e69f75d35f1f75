#include <ipmi_monitoring.h>
