/* lev_convert.h: the whole converter API for levconvert and the tests: the in-memory model (lev_convmodel.h), the
 * importers (lev_import.h), the writer (lev_writer.h), the quantizer (lev_quantize.h) and their progress (lev_progress.h). */
#pragma once

#include "lev_convmodel.h"
#include "lev_import.h"
#include "lev_writer.h"
#include "lev_quantize.h"
#include "lev_progress.h"
