/* The reference table with synchronised batch norm (sim/ops/ops.h: aal_ops_sync). */
#include "sim/ops/ops.h"

#include "sim/core/comm.h"
#include "sim/layers/layers.h"

static const aal_comm *comm_of(const aal_ops *ops)
{
  return ((const aal_ops_sync *)ops)->comm;
}

static int sync_bn_forward_train(const aal_ops *ops, const aal_tensor *x,
                                 const aal_tensor *gamma, const aal_tensor *beta,
                                 aal_tensor *running_mean, aal_tensor *running_var,
                                 double momentum, double eps, aal_tensor *y, aal_tensor *mean,
                                 aal_tensor *invstd, aal_error *err)
{
  return aal_bn2d_forward_train_sync(comm_of(ops), x, gamma, beta, running_mean, running_var,
                                     momentum, eps, y, mean, invstd, err);
}

static int sync_bn_backward(const aal_ops *ops, const aal_tensor *dy, const aal_tensor *x,
                            const aal_tensor *gamma, const aal_tensor *mean,
                            const aal_tensor *invstd, aal_tensor *dx, aal_tensor *dgamma,
                            aal_tensor *dbeta, aal_error *err)
{
  return aal_bn2d_backward_sync(comm_of(ops), dy, x, gamma, mean, invstd, dx, dgamma, dbeta,
                                err);
}

/* As the reference's fused entries (sim/ops/ref.c): BN into a scratch z, then ReLU. */
static int sync_bn_relu_forward_train(const aal_ops *ops, const aal_tensor *x,
                                      const aal_tensor *gamma, const aal_tensor *beta,
                                      aal_tensor *running_mean, aal_tensor *running_var,
                                      double momentum, double eps, aal_tensor *y,
                                      aal_tensor *mask, aal_tensor *mean, aal_tensor *invstd,
                                      aal_error *err)
{
  aal_tensor *z = aal_tensor_new_like(x, err);
  int rc = z ? sync_bn_forward_train(ops, x, gamma, beta, running_mean, running_var, momentum,
                                     eps, z, mean, invstd, err)
             : AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = aal_relu_forward(z, y, mask, err);
  aal_tensor_release(z);
  return rc;
}

static int sync_bn_relu_backward(const aal_ops *ops, const aal_tensor *dy,
                                 const aal_tensor *mask, const aal_tensor *x,
                                 const aal_tensor *gamma, const aal_tensor *mean,
                                 const aal_tensor *invstd, aal_tensor *dx, aal_tensor *dgamma,
                                 aal_tensor *dbeta, aal_error *err)
{
  aal_tensor *dz = aal_tensor_new_like(x, err);
  int rc = dz ? aal_relu_backward(dy, mask, dz, err) : AAL_ENOMEM;
  if (rc == AAL_OK)
    rc = sync_bn_backward(ops, dz, x, gamma, mean, invstd, dx, dgamma, dbeta, err);
  aal_tensor_release(dz);
  return rc;
}

void aal_ops_sync_init(aal_ops_sync *s, const aal_comm *comm)
{
  s->ops = *aal_ops_ref();
  s->ops.name = "ref";
  s->ops.bn_forward_train = sync_bn_forward_train;
  s->ops.bn_backward = sync_bn_backward;
  s->ops.bn_relu_forward_train = sync_bn_relu_forward_train;
  s->ops.bn_relu_backward = sync_bn_relu_backward;
  s->comm = comm;
}
