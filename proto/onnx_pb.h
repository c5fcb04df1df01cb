/* onnx_pb.h — the ONNX schema's C types and pack/unpack functions, for the emitters
 * (codegen/onnx.c, codegen/rnn_export.c) and the tests that read models back.
 *
 * The types (Onnx__ModelProto, Onnx__NodeProto, ...) are generated at build time by
 * protoc-c from Debian's /usr/include/onnx/onnx.proto into build/proto/onnx.pb-c.h
 * (proto/CMakeLists.txt); include this header rather than the generated one, so that the
 * one place that knows where the schema comes from is proto/. The IR version and opset
 * the emitters write are CG_ONNX_IR_VERSION and CG_ONNX_OPSET (codegen/onnx.h).
 *
 * Usage:
 *   #include "proto/onnx_pb.h"
 *   Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, bytes);
 *   ...
 *   onnx__model_proto__free_unpacked(m, NULL);
 */
#ifndef DARTSC_PROTO_ONNX_PB_H
#define DARTSC_PROTO_ONNX_PB_H

#include "onnx.pb-c.h"

#endif
