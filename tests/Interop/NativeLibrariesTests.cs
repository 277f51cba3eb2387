using ModelParallel.Interop;

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
            Assert.SkipWhen(missing is null, $"the {library} library is installed on this machine, so it cannot be missing");
            TestContext.Current.TestOutputHelper?.WriteLine(missing!.Message);
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
    public unsafe void ADeclarationCalledWithoutItsLibraryThrowsTheSameException()
    {
        bool installed = true;
        try
        {
            NativeLibraries.Load("nccl");
        }
        catch (NativeLibraryNotFoundException)
        {
            installed = false;
        }
        Assert.SkipWhen(installed, "NCCL is installed on this machine");
        var e = Assert.Throws<NativeLibraryNotFoundException>(() =>
        {
            int version;
            Nccl.GetVersion(&version);
        });
        Assert.Contains("libnccl.so.2", e.Message);
    }

    [Fact]
    public void UnknownLibraryNamesAreRejected() =>
        Assert.Throws<ArgumentException>(() => NativeLibraries.SonamesOf("libfoo"));
}
