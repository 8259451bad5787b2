// Loads a SavedModel the way TF Serving does (tensorflow::LoadSavedModel, tag
// "serve") and runs its serving_default signature on one 16-bit PCM WAV file,
// with no Python involved.
//
// Usage: run_saved_model [--bfloat16] EXPORT_DIR FILE.wav [SIGNATURE]
//          runs SIGNATURE (default serving_default) on the WAV's samples,
//          fed as float32 [1, samples] (as [samples] to the serving_long_*
//          signatures, which take one recording), and prints every output as
//          "<key>.shape d0 d1 ..." and "<key> v0 v1 ...".
//        run_saved_model EXPORT_DIR --zeros=D0,D1,...
//          feeds zeros of that shape instead (any rank, as a client may),
//          and prints "status <error>" with exit status 3 if refused.
//        --bfloat16 loads it as TF Serving does with the platform
//          configuration in the README: the session's graph rewritten by
//          auto_mixed_precision_onednn_bfloat16 (a CPU with AVX-512 BF16 or
//          AMX only).

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "tensorflow/cc/saved_model/loader.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/protobuf/rewriter_config.pb.h"
#include "tensorflow/core/public/session.h"

namespace {

// Returns mono float samples in [-1, 1) of a 16-bit PCM WAV, or empty.
std::vector<float> ReadPcm16Wav(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(file)),
                          std::istreambuf_iterator<char>());
  if (bytes.size() < 12 || std::memcmp(bytes.data(), "RIFF", 4) != 0 ||
      std::memcmp(bytes.data() + 8, "WAVE", 4) != 0) {
    return {};
  }
  uint16_t channels = 0, bits = 0;
  size_t offset = 12;
  while (offset + 8 <= bytes.size()) {
    uint32_t size = 0;
    std::memcpy(&size, bytes.data() + offset + 4, 4);
    const char* id = bytes.data() + offset;
    const char* body = bytes.data() + offset + 8;
    if (std::memcmp(id, "fmt ", 4) == 0) {
      std::memcpy(&channels, body + 2, 2);
      std::memcpy(&bits, body + 14, 2);
    } else if (std::memcmp(id, "data", 4) == 0) {
      if (bits != 16 || channels == 0 || offset + 8 + size > bytes.size()) {
        return {};
      }
      size_t frames = size / (2 * channels);
      std::vector<float> mono(frames, 0.0f);
      for (size_t i = 0; i < frames; ++i) {
        for (uint16_t c = 0; c < channels; ++c) {
          int16_t sample;
          std::memcpy(&sample, body + 2 * (i * channels + c), 2);
          mono[i] += sample / 32768.0f / channels;
        }
      }
      return mono;
    }
    offset += 8 + size + (size & 1);
  }
  return {};
}

// Parses "1,2,64000" into a shape; false if it is not a list of sizes.
bool ParseShape(const std::string& text, tensorflow::TensorShape* shape) {
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string part = text.substr(start, end - start);
    if (part.empty() || part.find_first_not_of("0123456789") !=
                            std::string::npos) {
      return false;
    }
    shape->AddDim(std::stoll(part));
    start = end + 1;
  }
  return shape->dims() > 0;
}

// Prints every output: "<key>.shape d0 d1 ..." then "<key> v0 v1 ...".
void PrintOutputs(const std::vector<std::string>& keys,
                  const std::vector<tensorflow::Tensor>& outputs) {
  std::cout.precision(9);
  for (size_t k = 0; k < keys.size(); ++k) {
    const tensorflow::Tensor& t = outputs[k];
    std::cout << keys[k] << ".shape";
    for (int d = 0; d < t.dims(); ++d) std::cout << " " << t.dim_size(d);
    std::cout << "\n" << keys[k];
    for (int64_t i = 0; i < t.NumElements(); ++i) {
      switch (t.dtype()) {
        case tensorflow::DT_FLOAT: std::cout << " " << t.flat<float>()(i); break;
        case tensorflow::DT_INT64: std::cout << " " << t.flat<int64_t>()(i); break;
        case tensorflow::DT_INT32: std::cout << " " << t.flat<int32_t>()(i); break;
        case tensorflow::DT_STRING:
          std::cout << " " << t.flat<tensorflow::tstring>()(i); break;
        default: std::cout << " ?";
      }
    }
    std::cout << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  tensorflow::SessionOptions session_options;
  if (argc > 1 && std::string(argv[1]) == "--bfloat16") {
    session_options.config.mutable_graph_options()
        ->mutable_rewrite_options()
        ->set_auto_mixed_precision_onednn_bfloat16(
            tensorflow::RewriterConfig::ON);
    ++argv;
    --argc;
  }
  if (argc < 3 || argc > 4) {
    std::cerr << "usage: " << argv[0]
              << " [--bfloat16] EXPORT_DIR FILE.wav [SIGNATURE]\n"
              << "       " << argv[0]
              << " EXPORT_DIR --zeros=D0,D1,... | --double_zeros=D0,D1,...\n";
    return 2;
  }
  const std::string what = argv[2];
  const std::string signature_name = argc == 4 ? argv[3] : "serving_default";
  tensorflow::Tensor input;
  const std::string zeros_flag = "--zeros=";
  const std::string double_zeros_flag = "--double_zeros=";
  const bool doubles = what.rfind(double_zeros_flag, 0) == 0;
  if (doubles || what.rfind(zeros_flag, 0) == 0) {
    // Any shape and float or double, as a TF Serving gRPC client may send
    // it: the signature must refuse a wrong shape in its own words.
    tensorflow::TensorShape shape;
    const size_t flag_size =
        doubles ? double_zeros_flag.size() : zeros_flag.size();
    if (!ParseShape(what.substr(flag_size), &shape)) {
      std::cerr << "bad shape " << what << "\n";
      return 2;
    }
    if (doubles) {
      input = tensorflow::Tensor(tensorflow::DT_DOUBLE, shape);
      input.flat<double>().setZero();
    } else {
      input = tensorflow::Tensor(tensorflow::DT_FLOAT, shape);
      input.flat<float>().setZero();
    }
  } else {
    std::vector<float> audio = ReadPcm16Wav(what);
    if (audio.empty()) {
      std::cerr << what << ": not a 16-bit PCM WAV file\n";
      return 2;
    }
    // Note signatures take a batch [1, samples]; the recording signatures
    // (serving_long_*) one recording [samples].
    const int64_t samples = static_cast<int64_t>(audio.size());
    const bool recording =
        signature_name.find("long") != std::string::npos;
    input = tensorflow::Tensor(
        tensorflow::DT_FLOAT,
        recording ? tensorflow::TensorShape({samples})
                  : tensorflow::TensorShape({1, samples}));
    std::copy(audio.begin(), audio.end(), input.flat<float>().data());
  }
  tensorflow::SavedModelBundle bundle;
  tensorflow::Status status = tensorflow::LoadSavedModel(
      session_options, tensorflow::RunOptions(), argv[1],
      // kSavedModelTagServe; its header is not in the wheel.
      {"serve"}, &bundle);
  if (!status.ok()) {
    std::cerr << "LoadSavedModel failed: " << status.ToString() << "\n";
    return 1;
  }
  const auto& signatures = bundle.meta_graph_def.signature_def();
  auto found = signatures.find(signature_name);
  if (found == signatures.end()) {
    std::cerr << "no " << signature_name << " signature\n";
    return 1;
  }
  const tensorflow::SignatureDef& signature = found->second;
  if (signature.inputs().size() != 1) {
    std::cerr << signature_name << " takes " << signature.inputs().size()
              << " inputs; this program feeds one\n";
    return 1;
  }
  std::vector<std::string> keys, names;
  for (const auto& output : signature.outputs()) {
    keys.push_back(output.first);
    names.push_back(output.second.name());
  }
  std::vector<tensorflow::Tensor> outputs;
  status = bundle.session->Run(
      {{signature.inputs().begin()->second.name(), input}}, names, {},
      &outputs);
  if (!status.ok()) {
    std::cout << "status " << status.ToString() << "\n";
    return 3;
  }
  PrintOutputs(keys, outputs);
  return 0;
}
