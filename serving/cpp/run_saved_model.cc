// Loads a SavedModel the way TF Serving does (tensorflow::LoadSavedModel, tag
// "serve") and runs its serving_default signature on one 16-bit PCM WAV file,
// with no Python involved.
//
// Usage: run_saved_model EXPORT_DIR FILE.wav
// Prints: "family <name>" and "probabilities <p0> <p1> ..." on two lines.

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "tensorflow/cc/saved_model/loader.h"
#include "tensorflow/core/framework/tensor.h"
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

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " EXPORT_DIR FILE.wav\n";
    return 2;
  }
  std::vector<float> audio = ReadPcm16Wav(argv[2]);
  if (audio.empty()) {
    std::cerr << argv[2] << ": not a 16-bit PCM WAV file\n";
    return 2;
  }
  tensorflow::SavedModelBundle bundle;
  tensorflow::Status status = tensorflow::LoadSavedModel(
      tensorflow::SessionOptions(), tensorflow::RunOptions(), argv[1],
      // kSavedModelTagServe; its header is not in the wheel.
      {"serve"}, &bundle);
  if (!status.ok()) {
    std::cerr << "LoadSavedModel failed: " << status.ToString() << "\n";
    return 1;
  }
  const auto& signatures = bundle.meta_graph_def.signature_def();
  auto found = signatures.find("serving_default");
  if (found == signatures.end()) {
    std::cerr << "no serving_default signature\n";
    return 1;
  }
  const tensorflow::SignatureDef& signature = found->second;
  tensorflow::Tensor input(tensorflow::DT_FLOAT,
                           tensorflow::TensorShape(
                               {1, static_cast<int64_t>(audio.size())}));
  std::copy(audio.begin(), audio.end(), input.flat<float>().data());
  std::vector<tensorflow::Tensor> outputs;
  status = bundle.session->Run(
      {{signature.inputs().at("audio").name(), input}},
      {signature.outputs().at("probabilities").name(),
       signature.outputs().at("family").name()},
      {}, &outputs);
  if (!status.ok()) {
    std::cerr << "Run failed: " << status.ToString() << "\n";
    return 1;
  }
  std::cout << "family " << outputs[1].flat<tensorflow::tstring>()(0) << "\n";
  std::cout << "probabilities";
  auto probabilities = outputs[0].flat<float>();
  std::cout.precision(9);
  for (int i = 0; i < probabilities.size(); ++i) {
    std::cout << " " << probabilities(i);
  }
  std::cout << "\n";
  return 0;
}
