/* libaal: everything the `aal` command and the tests use. */
#ifndef AAL_H
#define AAL_H

#include "aal_error.h"
#include "aal_tensor.h"
#include "aal_conv2d.h"
#include "aal_layers.h"
#include "aal_tape.h"
#include "aal_bench.h"
#include "aal_smoke.h"
#include "aal_rules.h"
#include "aal_resnet.h"
#include "aal_memory.h"
#include "aal_train.h"
#include "aal_checkpoint.h"
#include "aal_npy.h"
#include "aal_data.h"
#include "aal_li_resnet.h"

#endif
