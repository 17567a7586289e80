// libossshim.so must not need libm (one more library in every process) for the one function its
// static pugixml uses (fmod, in XPath, which the shim never evaluates). This definition is hidden
// by exports.map: programs keep libm's. x87 FPREM computes the exact remainder with the dividend's
// sign, as fmod does (NaN for an infinite x or a zero y).
extern "C" double fmod(double x, double y) {
  long double r = x;
  long double d = y;
  __asm__("1: fprem\n\tfnstsw %%ax\n\ttestw $0x400, %%ax\n\tjnz 1b" : "+t"(r) : "u"(d) : "ax", "cc");
  return static_cast<double>(r);
}
