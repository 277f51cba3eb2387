using ModelParallel.Interop;
using ModelParallel.Runtime.Cuda;

namespace ModelParallel.Tests.Interop;

public class NativeLibrariesTests
{
    [Theory]
    [InlineData("mpnative", "libmpnative.so", "cmake")]
    [InlineData("cudart", "libcudart.so.13", "libcudart.so.12")]
    [InlineData("nccl", "libnccl.so.2", "LD_LIBRARY_PATH")]
    [InlineData("cublasLt", "libcublasLt.so.13", "cuBLAS")]
    public void AMissingLibraryListsEveryPathTriedAndTheFix(string library, string soname, string hint)
    {
        string directory = Directory.CreateTempSubdirectory("mp-native-").FullName;
        try
        {
            NativeLibraryNotFoundException? missing = null;
            try
            {
                NativeLibraries.Load(library, directory);
            }
            catch (NativeLibraryNotFoundException e)
            {
                missing = e;
            }
            Assert.SkipWhen(missing is null, $"{soname} is installed on this machine, so it cannot be missing");
            Assert.Equal(library, missing!.LibraryName);
            Assert.Contains(Path.Combine(directory, soname), missing.Message);
            Assert.Contains(Path.Combine(AppContext.BaseDirectory, soname), missing.Message);
            Assert.Contains(hint, missing.Message);
            Assert.Contains(NativeLibraries.DirectoryVariable, missing.Message);
            Assert.All(NativeLibraries.SonamesOf(library), name => Assert.Contains(name, missing.Message));
            Assert.True(missing.Attempts.Count >= 2 * NativeLibraries.SonamesOf(library).Count);
        }
        finally
        {
            Directory.Delete(directory);
        }
    }

    [Fact]
    public void ADeclarationCalledWithoutItsLibraryThrowsTheSameException()
    {
        bool installed = true;
        try
        {
            NativeLibraries.Load("cudart");
        }
        catch (NativeLibraryNotFoundException)
        {
            installed = false;
        }
        Assert.SkipWhen(installed, "the CUDA runtime is installed on this machine");
        var e = Assert.Throws<NativeLibraryNotFoundException>(() => Device.Count);
        Assert.Contains("libcudart.so.13", e.Message);
    }

    [Fact]
    public void UnknownLibraryNamesAreRejected() =>
        Assert.Throws<ArgumentException>(() => NativeLibraries.SonamesOf("libfoo"));
}
