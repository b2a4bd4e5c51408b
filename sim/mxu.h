/*
 * The MXU: a systolic array of rows x cols multiply-accumulate PEs, in two
 * models that tests hold equal cycle for cycle.
 *
 *  - mxu_ref_matmul: a PE-level reference. It steps every cycle, moving real
 *    operands right through the grid and partial sums down it, with a
 *    controller that reacts to the array's state (which shadow weight
 *    registers are free, which are loaded). Slow: for small arrays and tests.
 *  - mxu_cycles: the fast tile model the simulator uses, a closed form in
 *    the folds (tiles), weight loading overlapped with streaming, fill and
 *    drain. docs/hardware.md derives it.
 *
 * C[M,N] = A[M,K] x B[K,N]. Dataflows:
 *   MXU_WS weight-stationary (the TPU): a B tile (K x N fold of rows x cols)
 *          sits in the PEs, the M rows of A stream through; weights are
 *          double-buffered (a shadow register per PE, loaded one array row
 *          per cycle) so the next tile loads while this one streams.
 *   MXU_OS output-stationary: each PE owns one C element of an M x N fold;
 *          A streams from the left, B from the top, K steps per fold; results
 *          move to a second register and drain down each column while the
 *          next fold computes.
 *   MXU_IS input-stationary: an A tile (K x M fold) sits in the PEs and the
 *          N columns of B stream through: weight-stationary on C^T = B^T A^T.
 */
#ifndef PODSIM_MXU_H
#define PODSIM_MXU_H

#include <stdint.h>

typedef enum MxuDataflow { MXU_WS, MXU_OS, MXU_IS, MXU_DATAFLOW_COUNT } MxuDataflow;

const char *mxu_dataflow_name(MxuDataflow df);

/* Cycles for C[M,N] = A[M,K] x B[K,N] on a rows x cols array, from the first
 * weight (or operand) entering the array to the last result leaving it. */
int64_t mxu_cycles(MxuDataflow df, int rows, int cols, int64_t M, int64_t K, int64_t N);

/* Number of tiles (folds) the matmul is cut into, and the fraction of PE
 * cycles doing useful MACs (M*K*N / (rows*cols*cycles)). */
int64_t mxu_folds(MxuDataflow df, int rows, int cols, int64_t M, int64_t K, int64_t N);
double mxu_utilization(MxuDataflow df, int rows, int cols, int64_t M, int64_t K, int64_t N);

/* The PE-level reference. A is (M, K), B is (K, N), C is (M, N), row-major;
 * C is overwritten. Returns the cycle count; *pe_updates (optional) receives
 * the number of PE-cycles stepped (rows*cols per cycle). Returns -1 if the
 * array or the shapes are not positive or the work space cannot be allocated. */
int64_t mxu_ref_matmul(MxuDataflow df, int rows, int cols, int M, int K, int N,
                       const float *A, const float *B, float *C, int64_t *pe_updates);

#endif
